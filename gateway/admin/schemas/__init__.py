"""Pydantic request/response schemas of the admin API, one module per resource."""
