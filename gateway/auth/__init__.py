"""Credential mechanics shared by the request pipeline and the CLI.

    api_keys.py      key format (visible id + secret), hashing, records, verification
    key_store.py     KeyStore protocol: file (one machine) and Redis (replicas) snapshots
    signing_keys.py  the gateway's own ES256 signing keys, rotation, JWKS
    tokens.py        JWT issue (ours) and verify (ours and external issuers')
    jwks.py          external issuers' JWKS: fetched, cached, refreshed on unknown kid
    oauth.py         POST /oauth/token (authlib), /.well-known/jwks.json and metadata
    service.py       AuthService: the above, built once per app and started in lifespan
"""
