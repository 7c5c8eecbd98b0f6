"""Models and scoring: features (one code path for training and scoring), the served model, the send-time
decision, recommendations and the product catalogue."""
