"""Placeholder; filled below."""
def openapi_document() -> dict:
    return {"openapi": "3.0.3"}
