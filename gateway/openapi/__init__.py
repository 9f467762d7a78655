"""The OpenAPI 3.1 document of the gateway, generated from the live config.

    components.py   error schema, headers, security schemes (pure data)
    routes.py       routes.yaml's routes as path items
    control.py      the gateway's own endpoints (health, metrics, OAuth2, this document)
    document.py     build_document(config, base_url) and GET /openapi.json
    cli.py          `gateway openapi`

Nothing here runs per request: the document is built once per config (a reload makes a
new one) and served as stored bytes with an ETag.
"""
