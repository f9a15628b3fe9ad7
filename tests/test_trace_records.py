"""What a trace keeps of a request is what it gives back when read: the handler's span made from
its packed times, the spans begun inside it moved under it, every child added from threads."""

from __future__ import annotations

import threading

from bfctl.runtime.tracing.spans import Span, StepSpan, Trace

HANDLER = StepSpan("handler total", {"code.function": "total"})


def test_a_handlers_times_come_back_as_its_span_with_what_ran_inside_it_moved_under_it() -> None:
    trace = Trace(0, "GET /total", "request", True)
    start, end = trace.start + 1_000, trace.start + 5_000_001_000  # a handler of more than 4 s
    before = Span(trace, "dependency Prices", trace.span_id)
    before.start, before.end = trace.start + 10, start - 10
    inside = Span(trace, "SELECT shop", trace.span_id)
    inside.start, inside.end = start + 10, end - 10
    trace.handled(HANDLER, start, end, "ValueError: no price")
    after = Span(trace, "sink write", trace.span_id)
    after.start, after.end = end + 10, end + 20

    spans = {span.name: span for span in trace.spans}
    handler = spans["handler total"]
    assert (handler.start, handler.end, handler.error) == (start, end, "ValueError: no price")
    assert handler.parent_id == trace.span_id and handler.attributes == HANDLER.attributes
    assert inside.parent_id == handler.span_id  # begun while the handler ran
    assert before.parent_id == trace.span_id and after.parent_id == trace.span_id
    assert trace.span_count() == 5 and len(trace.records()) == 5
    again = [span.span_id for span in trace.spans if span.name == "handler total"]
    assert again == [handler.span_id]  # the same id each time it is read
    assert [span.name for span in trace.spans] == [
        "GET /total",
        "dependency Prices",
        "handler total",
        "SELECT shop",
        "sink write",
    ]


def test_no_child_is_lost_when_threads_add_a_traces_first_ones_together() -> None:
    for _ in range(200):
        trace = Trace(0, "GET /total", "request", True)
        assert trace.children == [] and trace.span_count() == 1
        ready = threading.Barrier(4)

        def add(trace: Trace = trace, ready: threading.Barrier = ready) -> None:
            ready.wait()
            Span(trace, "dependency", 1)

        threads = [threading.Thread(target=add) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(trace.children) == 4
