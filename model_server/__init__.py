"""ClickMe model server: GALA networks, training, serving and demo data.

Never imports Django, and imports nothing heavy here: the site imports ``model_server.client``,
``model_server.canvas`` and ``model_server.demo_data`` without torch installed.
"""
