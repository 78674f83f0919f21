"""The seed's demultiplexer (channelsmultiplexer's README and test suite):
echostream, altechostream, closeafterfirst and neveraccept at /ws/."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reference_app.settings")

import django  # noqa: E402

django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channelsmultiplexer import AsyncJsonWebsocketDemultiplexer  # noqa: E402
from django.urls import re_path  # noqa: E402


class EchoConsumer(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        await self.send_json(content)


class AltEchoConsumer(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        await self.send_json({"received": content, "alt_value": 123})


class CloseAfterFirstConsumer(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        await self.send_json(content)
        await self.close()


class NeverAcceptConsumer(AsyncJsonWebsocketConsumer):
    async def websocket_connect(self, message):
        pass


class Demultiplexer(AsyncJsonWebsocketDemultiplexer):
    applications = {
        "echostream": EchoConsumer.as_asgi(),
        "altechostream": AltEchoConsumer.as_asgi(),
        "closeafterfirst": CloseAfterFirstConsumer.as_asgi(),
        "neveraccept": NeverAcceptConsumer.as_asgi(),
    }


application = ProtocolTypeRouter(
    {"websocket": URLRouter([re_path(r"^ws/$", Demultiplexer.as_asgi())])}
)
