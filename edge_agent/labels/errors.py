"""Label errors: a small hierarchy with stable snake_case codes."""

from __future__ import annotations


class LabelError(Exception):
    """Base of every label error; `code` is stable, `message` says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidLabel(LabelError):
    """The label's data cannot be printed as asked (bad code, GTIN, quantity...)."""


class PrinterUnavailable(LabelError):
    """The printer could not take the job.

    `maybe_sent` is False when the failure happened before any byte left (connect or
    open failed): the job can safely be sent again. True when it failed mid-transfer:
    part of the label may have printed, so only an operator can decide.
    """

    def __init__(self, printer: str, message: str, *, maybe_sent: bool) -> None:
        super().__init__("printer_unavailable", f"printer {printer}: {message}")
        self.printer = printer
        self.maybe_sent = maybe_sent


class UnknownJob(LabelError):
    def __init__(self, job_id: str) -> None:
        super().__init__("unknown_print_job", f"no print job {job_id!r} in this queue")


class JobConflict(LabelError):
    """Same job id submitted again with another label, printer or number of copies."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            "idempotency_conflict",
            f"print job {job_id!r} exists with other content; use a new job id",
        )


class InvalidTransition(LabelError):
    def __init__(self, job_id: str, state: str, wanted: str) -> None:
        super().__init__(
            "invalid_job_transition", f"print job {job_id!r} is {state}; it cannot become {wanted}"
        )


class QueueBusy(LabelError):
    def __init__(self, path: str) -> None:
        super().__init__(
            "print_queue_busy",
            f"another process is printing from {path}; its jobs are printed there",
        )
