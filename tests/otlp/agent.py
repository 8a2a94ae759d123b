"""A small agent instrumented with the OpenTelemetry Python SDK, exporting OTLP/HTTP
protobuf to OTEL_EXPORTER_OTLP_ENDPOINT (a tracecast under test).

It follows the GenAI semantic conventions: a create_agent span, an invoke_agent span with
nested execute_tool spans (one of which raises), and a chat span with token usage and
message events. On stdout it prints what it exported, span name -> ids and times, so the
test can check what tracecast made of each span.
"""

import json
import os
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SESSION = os.environ.get("AGENT_SESSION", "conv-1")
seen = {}


class Record(SpanProcessor):
    """Remembers every ended span's ids and times (what the test compares against)."""

    def on_end(self, span):
        ctx = span.get_span_context()
        seen[span.name] = {
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
            "start_ms": span.start_time // 1_000_000,
            "end_ms": span.end_time // 1_000_000,
        }


provider = TracerProvider(
    resource=Resource.create({"service.name": "demo-agents", "service.version": "0.1"})
)
provider.add_span_processor(Record())
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=50))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("demo.agent", "0.1")

common = {"gen_ai.conversation.id": SESSION, "gen_ai.system": "openai"}


def tool(name, fn):
    attrs = dict(common)
    attrs.update(
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.agent.id": "planner",
        }
    )
    with tracer.start_as_current_span(f"execute_tool {name}", attributes=attrs):
        time.sleep(0.01)
        return fn()


with tracer.start_as_current_span(
    "create_agent planner",
    attributes={
        **common,
        "gen_ai.operation.name": "create_agent",
        "gen_ai.agent.id": "planner",
        "gen_ai.agent.name": "Planner",
    },
):
    time.sleep(0.005)

time.sleep(0.005)
with tracer.start_as_current_span(
    "invoke_agent planner",
    attributes={**common, "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "planner"},
):
    time.sleep(0.005)
    with tracer.start_as_current_span(
        "chat gpt-4o",
        attributes={
            **common,
            "gen_ai.operation.name": "chat",
            "gen_ai.agent.id": "planner",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 42,
            "gen_ai.response.finish_reasons": ["stop"],
        },
    ) as chat:
        time.sleep(0.005)
        chat.add_event("gen_ai.user.message", {"content": "What is 2+2?"})
        time.sleep(0.005)
        chat.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop"})
        time.sleep(0.005)
    tool("web_search", lambda: "results")
    try:
        tool("calculator", lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    time.sleep(0.005)

ok = provider.force_flush(10_000)
provider.shutdown()
if not ok:
    sys.exit("export did not complete")
json.dump(seen, sys.stdout)
