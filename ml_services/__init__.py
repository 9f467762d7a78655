"""The gateway's bundled inference services: sentiment (VADER) and classification.

Each service is its own process, reached by the gateway over HTTP. Nothing here imports
`gateway`: the services must run, test and deploy on their own.
"""
