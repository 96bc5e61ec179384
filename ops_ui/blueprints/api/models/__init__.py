"""The REST API's request and response shapes, one module per resource.

Declared once here: request validation (ops_ui/blueprints/api/validation.py) and
`GET /api/openapi.json` (ops_ui/blueprints/api/openapi.py) both read these models.
"""
