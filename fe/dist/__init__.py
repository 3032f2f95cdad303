"""The built web console (``make ui``): ``web/`` for desktops, ``h5/`` for
phones. The wheel carries this folder as ``tokgateway.console``;
tokgateway/ui.py serves it at /ui."""
