"""The aiohttp server that runs a flow's endpoints and collectors."""
