"""The baseline: a bare grpc.aio server on the gateway's method names that does no work.

It takes the request bytes without decoding them and answers a fixed, realistic
CheckLoginResponse, so the difference between it and the gateway is exactly what
mtsg adds on top of Python gRPC.  Run: ``python -m gateway.bench.echo`` (prints its port).
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc

from gateway.bench.workload import CHECK_LOGIN, REPORT_PHONE_CHANGE
from gateway.generated.mtsg.v1 import common_pb2, event_service_pb2, threat_signal_service_pb2

CANNED_VERDICT = threat_signal_service_pb2.CheckLoginResponse(
    verdict_id="v_0000000000000000000000000000000000",
    action=common_pb2.ACTION_ALLOW,
    risk_score=10,
    reasons=[common_pb2.Reason(code="NEW_DEVICE", message="The login comes from a device never seen.")],
    summary="No scenario acts on what was found: the login comes from a device never seen for this customer.",
    policy_version="1",
).SerializeToString()
CANNED_EVENT = event_service_pb2.ReportPhoneNumberChangeResponse(accepted_count=1).SerializeToString()


async def _verdict(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return CANNED_VERDICT


async def _event(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return CANNED_EVENT


class _EchoHandler(grpc.GenericRpcHandler):
    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if handler_call_details.method == CHECK_LOGIN:
            return grpc.unary_unary_rpc_method_handler(_verdict)
        if handler_call_details.method == REPORT_PHONE_CHANGE:
            return grpc.unary_unary_rpc_method_handler(_event)
        return None


async def serve(listen: str = "127.0.0.1:0") -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 * 1024 * 1024), ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((_EchoHandler(),))
    port = server.add_insecure_port(listen)
    await server.start()
    print(port, flush=True)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop(1)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0"))
