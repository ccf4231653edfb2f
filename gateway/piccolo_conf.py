"""Piccolo's configuration module (`PICCOLO_CONF=gateway.piccolo_conf`), for its own CLI.

The gateway binds the engine from its settings (`gateway.database.bind_database`), which replaces
`DB` here; this module gives Piccolo's command line the same default.
"""

from piccolo.conf.apps import AppRegistry

from gateway.database import Engine, engine_for
from gateway.settings import Settings

DB: Engine = engine_for(Settings.from_env())

APP_REGISTRY = AppRegistry(apps=["tenants.piccolo_app", "sharing.piccolo_app"])
