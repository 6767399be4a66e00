"""Storage: the one SQLAlchemy metadata (`base`), the models (`models`) and engines/migrations (`session`)."""
