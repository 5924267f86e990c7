"""Hydra imports every module under `hydra_plugins` before it composes a config (as it does for plugins that
store their own schemas), so importing the schema here puts it in the ConfigStore for every entrypoint,
`--cfg job` and in-process compose(): conf/'s yaml extends its nodes (`defaults: [schema, _self_]`)."""

import tav.config_schema  # noqa: F401  (registers on import)
