"""`erp labels ...`: render a label, print it through the persisted queue, confirm.

Exit codes: 0 done; 2 invalid input; 3 the job is queued (printer down or another
process is printing); 4 the job is uncertain and needs `erp labels confirm`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edge_agent.labels.errors import LabelError, QueueBusy
from edge_agent.labels.kinds import LABEL_KINDS, Label, label_from_fields
from edge_agent.labels.printers import printer_from_url
from edge_agent.labels.queue import PRINTED, QUEUED, JobState, PrintQueue
from edge_agent.labels.render import render

labels_app = typer.Typer(
    help="Labels: render (SVG/PNG/ZPL), print once through a persisted queue, confirm.",
    no_args_is_help=True,
)
_out = Console()
_err = Console(stderr=True)

LabelKind = StrEnum("LabelKind", {name: name for name in LABEL_KINDS})  # type: ignore[misc]


class OutputFormat(StrEnum):
    svg = "svg"
    png = "png"
    zpl = "zpl"


class StateFilter(StrEnum):
    queued = "queued"
    sending = "sending"
    printed = "printed"
    uncertain = "uncertain"


KindArg = Annotated[LabelKind, typer.Argument(help="Label kind.")]
Code = Annotated[str | None, typer.Option(help="Work order, item or location code.")]
ItemCode = Annotated[str | None, typer.Option(help="Item code (work order label).")]
Quantity = Annotated[str | None, typer.Option(help="Quantity as a decimal, e.g. 12.5.")]
Name = Annotated[str | None, typer.Option(help="Item or operator name.")]
Gtin = Annotated[str | None, typer.Option(help="GTIN-8/12/13/14 (item, lot).")]
Lot = Annotated[str | None, typer.Option(help="Lot / batch (GS1 AI 10).")]
Expiry = Annotated[str | None, typer.Option(help="Expiry date YYYY-MM-DD (lot).")]
Unit = Annotated[str | None, typer.Option(help="Lot quantity unit: EA or KG.")]
OperatorCode = Annotated[str | None, typer.Option(help="Operator badge code.")]
QueueDb = Annotated[
    Path,
    typer.Option(envvar="ERP_LABEL_QUEUE_DB", help="SQLite file holding the print queue."),
]
PrinterUrl = Annotated[
    str, typer.Option(help="tcp://host:9100, a serial device, or a pyserial URL.")
]
Baudrate = Annotated[int, typer.Option(help="Serial speed (serial printers only).")]
DEFAULT_QUEUE_DB = Path("var/labels.sqlite")


def _fail(exc: LabelError) -> typer.Exit:
    _err.print(f"[red]error[/red] {exc.code}: {exc.message}", markup=True, highlight=False)
    return typer.Exit(2)


def _label(kind: str, **options: str | None) -> Label:
    return label_from_fields(kind, {k: v for k, v in options.items() if v is not None})


def _open_queue(path: Path) -> PrintQueue:
    path.parent.mkdir(parents=True, exist_ok=True)
    return PrintQueue(path)


@labels_app.command("render")
def render_command(
    kind: KindArg,
    out: Annotated[Path, typer.Option(help="File to write.")],
    fmt: Annotated[
        OutputFormat | None, typer.Option("--format", help="Default: from the file suffix.")
    ] = None,
    code: Code = None,
    item_code: ItemCode = None,
    quantity: Quantity = None,
    name: Name = None,
    gtin: Gtin = None,
    lot: Lot = None,
    expiry: Expiry = None,
    unit: Unit = None,
    operator_code: OperatorCode = None,
) -> None:
    """Write a label as SVG, PNG or ZPL."""
    fields = dict(code=code, item_code=item_code, quantity=quantity, name=name, gtin=gtin)
    fields |= dict(lot=lot, expiry=expiry, unit=unit, operator_code=operator_code)
    chosen = fmt.value if fmt else out.suffix.lstrip(".").lower()
    if chosen not in OutputFormat.__members__:
        _err.print(f"error: say --format svg|png|zpl (cannot tell from {out.name!r})")
        raise typer.Exit(2)
    try:
        data = render(_label(kind.value, **fields), chosen)  # type: ignore[arg-type]
    except LabelError as exc:
        raise _fail(exc) from exc
    out.write_bytes(data)
    _out.print(f"wrote {out} ({chosen}, {len(data)} bytes)", highlight=False)


def _report(queue: PrintQueue, job_id: str) -> int:
    job = queue.job(job_id)
    if job.state == PRINTED:
        _out.print(f"job {job_id} printed", highlight=False)
        return 0
    if job.state == QUEUED:
        _out.print(f"job {job_id} queued: {job.last_error or 'waiting'}", highlight=False)
        return 3
    _out.print(
        f"job {job_id} is {job.state}: {job.last_error}. Look at the printer, then run"
        f" `erp labels confirm {job_id} --printed` or `--not-printed`.",
        highlight=False,
    )
    return 4


def _run(queue: PrintQueue, printer: str, baudrate: int) -> None:
    try:
        queue.run_once({printer: printer_from_url(printer, baudrate=baudrate)})
    except QueueBusy as exc:
        _out.print(exc.message, highlight=False)


@labels_app.command("print")
def print_command(
    kind: KindArg,
    printer: PrinterUrl,
    copies: Annotated[int, typer.Option(min=1, max=999)] = 1,
    job_id: Annotated[str | None, typer.Option(help="Reuse to retry without duplicates.")] = None,
    queue_db: QueueDb = DEFAULT_QUEUE_DB,
    baudrate: Baudrate = 9600,
    code: Code = None,
    item_code: ItemCode = None,
    quantity: Quantity = None,
    name: Name = None,
    gtin: Gtin = None,
    lot: Lot = None,
    expiry: Expiry = None,
    unit: Unit = None,
    operator_code: OperatorCode = None,
) -> None:
    """Queue a label and print the printer's queue (reuse --job-id to retry safely)."""
    fields = dict(code=code, item_code=item_code, quantity=quantity, name=name, gtin=gtin)
    fields |= dict(lot=lot, expiry=expiry, unit=unit, operator_code=operator_code)
    try:
        label = _label(kind.value, **fields)
        with _open_queue(queue_db) as queue:
            submitted = queue.submit(label, printer, copies=copies, job_id=job_id)
            _run(queue, printer, baudrate)
            raise typer.Exit(_report(queue, submitted))
    except LabelError as exc:
        raise _fail(exc) from exc


@labels_app.command("run")
def run_command(
    printer: PrinterUrl, queue_db: QueueDb = DEFAULT_QUEUE_DB, baudrate: Baudrate = 9600
) -> None:
    """Print what is queued for a printer (after it came back)."""
    with _open_queue(queue_db) as queue:
        _run(queue, printer, baudrate)
        waiting = [job for job in queue.jobs(QUEUED) if job.printer_name == printer]
    _out.print(f"{len(waiting)} job(s) still queued for {printer}", highlight=False)
    raise typer.Exit(3 if waiting else 0)


@labels_app.command("queue")
def queue_command(
    queue_db: QueueDb = DEFAULT_QUEUE_DB,
    state: Annotated[StateFilter | None, typer.Option(help="Only jobs in this state.")] = None,
) -> None:
    """List print jobs, oldest first."""
    with _open_queue(queue_db) as queue:
        wanted: JobState | None = state.value if state else None  # type: ignore[assignment]
        jobs = queue.jobs(wanted)
    table = Table("seq", "job", "state", "printer", "kind", "copies", "attempts", "last error")
    for job in jobs:
        row = (job.seq, job.job_id, job.state, job.printer_name, job.kind, job.copies)
        table.add_row(*map(str, row), str(job.attempts), job.last_error or "")
    _out.print(table)


@labels_app.command("confirm")
def confirm_command(
    job_id: Annotated[str, typer.Argument(help="An uncertain job.")],
    printed: Annotated[
        bool | None,
        typer.Option(
            "--printed/--not-printed",
            help="What the operator saw at the printer: not printed queues it again.",
        ),
    ] = None,
    queue_db: QueueDb = DEFAULT_QUEUE_DB,
) -> None:
    """Settle an uncertain job (the agent stopped while sending it)."""
    if printed is None:
        _err.print("error: say --printed or --not-printed")
        raise typer.Exit(2)
    try:
        with _open_queue(queue_db) as queue:
            job = queue.confirm(job_id, printed)
    except LabelError as exc:
        raise _fail(exc) from exc
    _out.print(f"job {job_id} is now {job.state}", highlight=False)
