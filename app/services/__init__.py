"""Business rules, one module per concern. No Flask request objects here."""
