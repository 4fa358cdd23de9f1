"""Bills of materials as a graph: validation, cycle detection, low-level codes,
multi-level explosion and the routing's planned load. Pure Python on Decimal, no I/O;
items and work centres are named by their codes.

Rounding (DESIGN.md §3.6): quantities have 6 places. A line's requirement,
parent quantity / output quantity × line quantity × (1 + scrap factor), is computed
in one expression and rounded half-up to 6 places once, at its own level; the level
below explodes that rounded figure. A component's total is the exact sum of its
per-path requirements. Standard minutes are rounded half-up to 6 places per work
centre, and each cost (minutes / 60 × hourly rate) half-up to the cent from the
rounded minutes, so a reader can recompute every figure from the ones shown. A figure
of 10¹⁷ or more is refused (`figure_too_large`): it could not be rounded exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from cloud_api.domain.money import ZERO, money, qty
from cloud_api.errors import Conflict, Rejected

ONE = Decimal(1)
MINUTES_PER_HOUR = Decimal(60)
MAX_EXPLOSION_PATHS = 10_000  # a bound on the explosion: shared sub-assemblies multiply paths
MAX_FIGURE = Decimal(10) ** 17  # below it, 6 places fit the default 28-digit context

Graph = Mapping[str, Sequence[str]]  # item → its components
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BomLine:
    component: str
    quantity: Decimal  # per the BOM's output quantity of the parent
    scrap_factor: Decimal = ZERO  # 0.05 = 5 % more than the quantity


@dataclass(frozen=True, slots=True)
class Operation:
    seq: int
    work_center: str
    setup_minutes: Decimal  # once per batch
    minutes_per_unit: Decimal  # per unit of the item made (not per output quantity)


@dataclass(frozen=True, slots=True)
class Bom:
    item: str
    lines: tuple[BomLine, ...]
    output_quantity: Decimal = ONE
    operations: tuple[Operation, ...] = ()

    def requirement(self, line: BomLine, parent_quantity: Decimal) -> Decimal:
        """What `line` needs to make `parent_quantity` of the item, rounded half-up
        to 6 places."""
        gross = parent_quantity * line.quantity * (ONE + line.scrap_factor)
        return qty(_bounded(gross / self.output_quantity, f"the requirement of {line.component}"))


@dataclass(frozen=True, slots=True)
class Requirement:
    """What one path down the BOMs asks of its last item."""

    path: tuple[str, ...]  # from the exploded item down to the component
    quantity: Decimal

    @property
    def component(self) -> str:
        return self.path[-1]

    @property
    def level(self) -> int:
        return len(self.path) - 1


@dataclass(frozen=True, slots=True)
class Rates:
    labour_per_hour: Decimal
    overhead_per_hour: Decimal


@dataclass(frozen=True, slots=True)
class WorkCenterLoad:
    work_center: str
    minutes: Decimal
    labour_cost: Decimal
    overhead_cost: Decimal

    @property
    def hours(self) -> Decimal:
        return qty(self.minutes / MINUTES_PER_HOUR)


# -- validation -------------------------------------------------------------------


def validate_bom(bom: Bom) -> None:
    """Refuse a BOM that is wrong whatever else exists: no lines, a quantity that is
    not positive, a scrap factor outside [0, 1), the item as its own component, a
    component or an operation sequence number listed twice."""
    if not bom.lines:
        raise Rejected("bom_without_lines", f"the BOM of {bom.item} needs at least one line")
    _check_positive(bom.output_quantity, f"the output quantity of {bom.item}")
    for line in bom.lines:
        _check_line(bom.item, line)
    component = _first_duplicate(line.component for line in bom.lines)
    if component is not None:
        raise Rejected(
            "bom_duplicate_component",
            f"{component} is listed twice in the BOM of {bom.item}; "
            "put its whole quantity on one line",
        )
    seq = _first_duplicate(op.seq for op in bom.operations)
    if seq is not None:
        raise Rejected(
            "bom_duplicate_operation",
            f"operation {seq} is listed twice in the routing of {bom.item}",
        )


def _check_line(item: str, line: BomLine) -> None:
    if line.component == item:
        raise Rejected("bom_component_is_parent", f"{item} cannot be a component of its own BOM")
    _check_positive(line.quantity, f"the quantity of {line.component}")
    if not ZERO <= line.scrap_factor < ONE:
        raise Rejected(
            "invalid_scrap_factor",
            f"the scrap factor of {line.component} is {line.scrap_factor}; it is a "
            "fraction from 0 up to (not including) 1, e.g. 0.05 for 5 %",
        )


def _check_positive(value: Decimal, what: str) -> None:
    if value <= ZERO:
        raise Rejected("invalid_quantity", f"{what} must be greater than 0, not {value}")


def _first_duplicate(values: Iterable[T]) -> T | None:
    seen: set[T] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


# -- the graph --------------------------------------------------------------------


def graph_of(boms: Mapping[str, Bom]) -> dict[str, list[str]]:
    return {item: [line.component for line in bom.lines] for item, bom in boms.items()}


def find_cycle(graph: Graph, roots: Iterable[str] | None = None) -> list[str] | None:
    """A cycle reachable from `roots` (default: every parent, sorted) as the path that
    closes it, e.g. ["TBL", "LEG", "TBL"]; None if there is none. Depth first with an
    explicit stack, so a deep BOM cannot exhaust Python's call stack; each item is
    searched from once, so this is linear in the size of the graph."""
    done: set[str] = set()
    for root in sorted(graph) if roots is None else roots:
        if root in done:
            continue
        path, children = [root], [iter(graph.get(root, ()))]
        while children:
            child = next(children[-1], None)
            if child is None:
                done.add(path.pop())
                children.pop()
            elif child in path:
                return [*path[path.index(child) :], child]
            elif child not in done:
                path.append(child)
                children.append(iter(graph.get(child, ())))
    return None


def check_acyclic(graph: Graph, roots: Iterable[str] | None = None) -> None:
    cycle = find_cycle(graph, roots)
    if cycle is not None:
        raise cycle_error(cycle)


def cycle_error(cycle: list[str]) -> Conflict:
    return Conflict(
        "bom_cycle",
        f"the BOMs would form a cycle: {' → '.join(cycle)}; an item cannot be "
        "its own component at any depth",
        cycle=cycle,
    )


def low_level_codes(graph: Graph) -> dict[str, int]:
    """The low-level code of every item of the graph: the deepest level at which it
    appears below a top-level item (top-level items 0), so that for every edge
    parent → component, code(component) > code(parent) and MRP can net each item
    once, after all of its parents. The longest path from a root over a topological
    order (Kahn); a cycle is refused as `bom_cycle`."""
    nodes = set(graph).union(*graph.values())
    parents = dict.fromkeys(nodes, 0)
    for components in graph.values():
        for component in components:
            parents[component] += 1
    codes = dict.fromkeys(nodes, 0)
    ready = deque(sorted(node for node, count in parents.items() if count == 0))
    while ready:
        parent = ready.popleft()
        for component in graph.get(parent, ()):
            codes[component] = max(codes[component], codes[parent] + 1)
            parents[component] -= 1
            if parents[component] == 0:
                ready.append(component)
    left = sorted(node for node, count in parents.items() if count > 0)
    if left:
        check_acyclic(graph, left)
    return codes


# -- explosion and routing ----------------------------------------------------------


def explode(
    boms: Mapping[str, Bom],
    item: str,
    quantity: Decimal,
    max_paths: int = MAX_EXPLOSION_PATHS,
) -> list[Requirement]:
    """Every path from `item` down through `boms` (the active BOM per item), depth
    first in line order, with the gross quantity it needs for `quantity` of `item`.
    A component with a BOM of its own is listed and exploded further with its rounded
    requirement. At most `max_paths` paths, else `bom_explosion_too_large`."""
    found: list[Requirement] = []
    stack = [Requirement((item,), quantity)]
    while stack:
        parent = stack.pop()
        if parent.level > 0:
            found.append(parent)
            if len(found) > max_paths:
                raise Rejected(
                    "bom_explosion_too_large",
                    f"the BOM of {item} has more than {max_paths} paths; explode its "
                    "sub-assemblies one at a time",
                )
        bom = boms.get(parent.component)
        if bom is None:
            continue
        for line in reversed(bom.lines):
            if line.component in parent.path:  # active BOMs are acyclic; never loop
                raise cycle_error(
                    [*parent.path[parent.path.index(line.component) :], line.component]
                )
            needed = bom.requirement(line, parent.quantity)
            stack.append(Requirement((*parent.path, line.component), needed))
    return found


def gross_requirements(requirements: Iterable[Requirement]) -> dict[str, Decimal]:
    """The total per component (exact sums of 6-place figures), in first-seen order."""
    totals: dict[str, Decimal] = {}
    for req in requirements:
        totals[req.component] = totals.get(req.component, ZERO) + req.quantity
    return totals


def routing_load(
    operations: Iterable[Operation], quantity: Decimal, rates: Mapping[str, Rates]
) -> list[WorkCenterLoad]:
    """The standard minutes per work centre to make `quantity` (each operation's
    set-up once plus its minutes per unit × quantity) and their labour and overhead
    cost at the centre's hourly rates: the planned cost a work order's actual charges
    are compared with. Work centres in order of first operation."""
    minutes: dict[str, Decimal] = {}
    for op in sorted(operations, key=lambda op: op.seq):
        spent = op.setup_minutes + op.minutes_per_unit * quantity
        minutes[op.work_center] = minutes.get(op.work_center, ZERO) + spent
    return [_load(centre, total, rates[centre]) for centre, total in minutes.items()]


def _load(centre: str, minutes: Decimal, rates: Rates) -> WorkCenterLoad:
    rounded = qty(_bounded(minutes, f"the minutes at {centre}"))
    labour = _bounded(rounded * rates.labour_per_hour / MINUTES_PER_HOUR, "the labour cost")
    overhead = _bounded(rounded * rates.overhead_per_hour / MINUTES_PER_HOUR, "the overhead cost")
    return WorkCenterLoad(centre, rounded, money(labour), money(overhead))


def _bounded(value: Decimal, what: str) -> Decimal:
    """`value`, if it is small enough to round exactly; else refused, not a 500."""
    if value >= MAX_FIGURE:
        raise Rejected(
            "figure_too_large",
            f"{what} comes to {value:.6E}, over the limit of {MAX_FIGURE:.0E}; "
            "check the quantities",
        )
    return value
