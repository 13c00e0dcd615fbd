"""The interactive API docs: Swagger UI at /docs, all three services' OpenAPI
documents in one page (the top bar picks one), each with its bearer scheme, so
"Authorize" takes a token from POST /token and "Try it out" calls the API.

Served by the users service and routed by the gateway (kong.yml: docs); every
URL in it is relative, so the page, its documents and the calls it makes all
go through the gateway. The assets (Swagger UI's dist files) come from the
flask-swagger-ui package, installed and locked like every other dependency:
nothing is fetched from a CDN, and the page works offline.
"""

from flask_swagger_ui import get_swaggerui_blueprint

from common.settings import SERVICES

PATH = "/docs"


def docs_blueprint():
    documents = [{"name": service, "url": f"/openapi/{service}.json"} for service in SERVICES]
    return get_swaggerui_blueprint(
        PATH,
        documents[0]["url"],
        config={
            "app_name": "shop API",
            "urls": documents,
            # Tokens last 15 minutes; keeping one in the browser's storage buys nothing.
            "persistAuthorization": False,
            "displayRequestDuration": True,
        },
        blueprint_name="docs",
    )
