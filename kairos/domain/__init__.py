"""Domain records: what the logic works on, free of any storage or transport detail.

- :mod:`kairos.domain.customers`: a stored customer and the writes of an ingestion;
- :mod:`kairos.domain.campaigns`: campaign and segment definitions, and a stored campaign's lifecycle;
- :mod:`kairos.domain.messages`: a message to deliver and a send request.
"""
