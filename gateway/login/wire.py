"""CheckLoginRequest as it travels, each installed app left as its encoded bytes.

A login carries 150-300 apps, and most of them are the same few thousand apps that
every customer's phone holds.  Decoding every app into protobuf objects and checking
its fields again at each login was most of the gateway's CPU.  Protobuf
encodes a nested message exactly like a ``bytes`` field (length-delimited), so a copy
of the request's schema in which ``LoginTelemetry.installed_apps`` is ``repeated
bytes`` decodes the very same request, handing over each app's bytes untouched; the
apps already checked are then found by those bytes (``gateway.login.checked_apps``).

The copy is derived from the generated descriptors when this module is imported, in a
descriptor pool of its own, so it can never drift from the contract and is invisible to
reflection and to every other use of the ``mtsg.v1`` types.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message

from gateway.generated.mtsg.v1 import telemetry_pb2, threat_signal_service_pb2

_APPS_MESSAGE = "LoginTelemetry"
_APPS_FIELD = "installed_apps"


def _with_apps_as_bytes(file: FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    if file.name == telemetry_pb2.DESCRIPTOR.name:
        (telemetry,) = (message for message in proto.message_type if message.name == _APPS_MESSAGE)
        (apps,) = (field for field in telemetry.field if field.name == _APPS_FIELD)
        apps.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
        apps.ClearField("type_name")
    return proto


def _wire_pool() -> descriptor_pool.DescriptorPool:
    """A pool holding the service's file and everything it imports, with the one field changed."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        pool.Add(_with_apps_as_bytes(file))
        added.add(file.name)

    add(threat_signal_service_pb2.DESCRIPTOR)
    return pool


CheckLoginWire: type[Message] = message_factory.GetMessageClass(
    _wire_pool().FindMessageTypeByName(threat_signal_service_pb2.CheckLoginRequest.DESCRIPTOR.full_name)
)


def decode_check_login(body: bytes) -> Message:
    """The request with its apps as bytes; a body that is not a CheckLoginRequest raises DecodeError
    here, except inside an app's bytes, which only ``gateway.login.checked_apps`` reads."""
    return CheckLoginWire.FromString(body)
