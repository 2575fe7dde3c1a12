"""``convert_units``: a built-in tool that converts a value between units, backed by pint.

pint knows thousands of units, prefixes and plurals, and handles offset scales: 100 degF
is 37.78 degC, not the 55.56 a naive factor gives. This module only adds what a chat
model's spellings need on top of pint:

* ``C``/``F`` (and ``°C``, ``℃``, ``deg F``, ``degrees celsius``...) mean degrees Celsius
  and Fahrenheit; to pint, ``C`` is the coulomb, ``F`` the farad and ``degrees celsius``
  parses as ``degree * delta_degC``.
* ``kb``/``mb``/``gb``/``tb``/``KB`` mean bytes; to pint the lower-case forms are barns.
* ``x per y`` means ``x/y``; multi-word names (``fluid ounce``) and capitalised ones
  (``Kilometers``) are retried as ``fluid_ounce`` and ``kilometers``.

pint's ``UnitRegistry`` takes a few hundred milliseconds to build (and ``import pint``
about as long), so neither happens at import time or when the tool is made: the registry
is built once per process, on the first conversion, under a lock.
"""

from __future__ import annotations

import math
import re
import threading
from typing import TYPE_CHECKING, Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException

if TYPE_CHECKING:
    import pint

EXAMPLES = "e.g. 5 km to miles, 100 F to C, 60 mph to km/h, 2 GB to MiB, 90 minutes to hours"

_TEMPERATURE = re.compile(
    r"^(?:deg(?:ree)?s?\.?\s*|°\s*)?(?P<scale>c|celsius|centigrade|f|fahrenheit|k|kelvin)$",
    re.IGNORECASE,
)
_ALIASES = {
    "℃": "degC",
    "℉": "degF",
    "kb": "kB",
    "KB": "kB",
    "mb": "MB",
    "gb": "GB",
    "tb": "TB",
    "pb": "PB",
    "mpg": "mile / gallon",
    "kmh": "km / hour",
}

_registry: pint.UnitRegistry | None = None
_registry_lock = threading.Lock()


def unit_registry() -> pint.UnitRegistry:
    """The process-wide pint registry, built on first use (it is slow to build)."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                import pint

                _registry = pint.UnitRegistry()
    return _registry


def _candidates(unit: str) -> list[str]:
    """Spellings of ``unit`` to try with pint, most specific first."""
    text = " ".join(unit.strip().replace("º", "°").split())
    if text in _ALIASES:
        return [_ALIASES[text]]
    match = _TEMPERATURE.match(text)
    if match:
        return [{"c": "degC", "f": "degF", "k": "kelvin"}[match["scale"][0].lower()]]
    text = re.sub(r"\s+per\s+", " / ", text, flags=re.IGNORECASE)
    options = [text]
    if " " in text and not re.search(r"[*/^()]", text):
        options.insert(0, text.replace(" ", "_"))
    options += [o.lower() for o in options if o.lower() != o]
    return list(dict.fromkeys(options))


def parse_unit(unit: str) -> pint.Unit:
    """Read a unit as a chat model writes it (``km``, ``miles``, ``°C``, ``F``, ``km/h``).

    Raises:
        ToolException: the unit is empty, unknown or not a plain unit.
    """
    import pint

    registry = unit_registry()
    if not unit.strip():
        raise ToolException(f"missing unit: give one such as km, lb, °C or GB ({EXAMPLES})")
    for candidate in _candidates(unit):
        try:
            return registry.parse_units(candidate)
        except pint.UndefinedUnitError:
            continue
        except Exception:  # noqa: BLE001, S112 - pint's parser raises many types on bad syntax
            continue
    raise ToolException(
        f"unknown unit {unit!r}: use a unit name or abbreviation such as km, miles, lb, kg, "
        f"°C, °F, mph, km/h, GB, MiB, hours ({EXAMPLES})"
    )


def format_number(value: float) -> str:
    """Round for reading: 4 significant digits but at least 2 decimals, no trailing zeros
    (37.7778 -> 37.78, 1.609344 -> 1.609, 0.00104858 -> 0.001049); scientific notation
    beyond 1e15 or under 1e-4."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e15 or magnitude < 1e-4:
        return f"{value:.4g}"
    decimals = max(2, 3 - math.floor(math.log10(magnitude)))
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _describe(unit: pint.Unit) -> str:
    dimensionality = str(unit.dimensionality)
    return f"{unit:~P}" + ("" if dimensionality == "dimensionless" else f", {dimensionality}")


def convert(value: float, from_unit: str, to_unit: str) -> str:
    """Convert and format, e.g. ``convert(100, "F", "C") == "100 °F = 37.78 °C"``.

    Raises:
        ToolException: a unit is unknown, the units measure different things, or the
            value is not a finite number.
    """
    import pint

    if not math.isfinite(value):
        raise ToolException(f"value must be a finite number, not {value}")
    source, target = parse_unit(from_unit), parse_unit(to_unit)
    registry = unit_registry()
    try:
        result = registry.Quantity(value, source).to(target)
    except pint.DimensionalityError:
        raise ToolException(
            f"cannot convert {from_unit!r} ({_describe(source)}) to {to_unit!r} "
            f"({_describe(target)}): they measure different things; convert between units "
            f"of the same kind ({EXAMPLES})"
        ) from None
    except pint.PintError as exc:
        raise ToolException(f"cannot convert {from_unit!r} to {to_unit!r}: {exc}") from None
    magnitude: Any = result.magnitude
    return f"{value:.15g} {source:~P} = {format_number(float(magnitude))} {target:~P}"


def make_unit_converter() -> BaseTool:
    """Build the ``convert_units`` tool; pint is loaded on its first call, not here."""

    def convert_units(value: float, from_unit: str, to_unit: str) -> str:
        """Convert a quantity between units of measurement, e.g. 5 km to miles, 100 F to C.

        Handles length, mass, temperature, speed, volume, area, time, energy, pressure and
        data sizes (GB, MiB), with common names and abbreviations.

        Args:
            value: the number to convert, e.g. 5.
            from_unit: unit of the value, e.g. km, miles, lb, °C, F, mph, GB, hours.
            to_unit: unit wanted, e.g. miles, kg, °F, km/h, MiB, minutes.
        """
        return convert(value, from_unit, to_unit)

    return StructuredTool.from_function(
        convert_units, handle_tool_error=False, parse_docstring=True
    )
