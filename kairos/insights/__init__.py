"""Insights: RFM, cohorts, forecasts, global control, and the statistics behind results."""
