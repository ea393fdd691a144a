"""ClickMe model server: GALA networks, training, serving and demo data.

Never imports Django, and imports nothing heavy here: the site imports ``model_server.client``,
``model_server.canvas`` and ``model_server.demo_data`` without torch installed.
"""

__version__ = "0.1.0"  # the project's (pyproject.toml); the server reports it in its metadata
