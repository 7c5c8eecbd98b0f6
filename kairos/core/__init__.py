"""The small core every part of the product stands on: settings, errors, time, names, observability, and the
helpers every AWS adapter uses."""
