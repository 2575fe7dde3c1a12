"""convert_units: pint conversions with the spellings a chat model uses."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from langchain_core.tools import ToolException

from bulwark.tools import units
from bulwark.tools.units import format_number, make_unit_converter


@pytest.mark.parametrize(
    ("value", "from_unit", "to_unit", "expected"),
    [
        (100, "F", "C", "100 °F = 37.78 °C"),  # offset scale, not just a factor
        (100, "fahrenheit", "celsius", "100 °F = 37.78 °C"),
        (37, "degrees Celsius", "deg F", "37 °C = 98.6 °F"),
        (-40, "°C", "°F", "-40 °C = -40 °F"),
        (1, "℃", "℉", "1 °C = 33.8 °F"),
        (0, "C", "K", "0 °C = 273.15 K"),
        (5, "km", "miles", "5 km = 3.107 mi"),
        (5, "kilometers", "mi", "5 km = 3.107 mi"),
        (1, "Kilometer", "m", "1 km = 1000 m"),
        (10, "pounds", "kg", "10 lb = 4.536 kg"),
        (1, "lb", "kilograms", "1 lb = 0.4536 kg"),
        (60, "mph", "km/h", "60 mph = 96.56 km/h"),
        (100, "km per hour", "miles per hour", "100 km/h = 62.14 mi/h"),
        (2, "GB", "MiB", "2 GB = 1907.35 MiB"),
        (1, "gb", "mb", "1 GB = 1000 MB"),  # bytes, not gigabarns
        (1, "MiB", "GB", "1 MiB = 0.001049 GB"),
        (90, "minutes", "hours", "90 min = 1.5 h"),
        (2.5, "hours", "min", "2.5 h = 150 min"),
        (1, "fluid ounce", "mL", "1 floz = 29.57 ml"),
        (1, "nautical mile", "km", "1 nmi = 1.852 km"),
        (1e20, "m", "km", "1e+20 m = 1e+17 km"),
    ],
)
def test_converts(value: float, from_unit: str, to_unit: str, expected: str) -> None:
    tool = make_unit_converter()
    assert tool.invoke({"value": value, "from_unit": from_unit, "to_unit": to_unit}) == expected


@pytest.mark.parametrize(
    ("from_unit", "to_unit", "expected"),
    [
        ("furlongz", "m", "unknown unit 'furlongz'"),
        ("km", "parsecs per fortnightz", "unknown unit 'parsecs per fortnightz'"),
        ("km/", "m", "unknown unit 'km/'"),
        ("__import__('os')", "m", "unknown unit"),
        ("", "m", "missing unit"),
        ("km", "kg", "cannot convert 'km' (km, [length]) to 'kg' (kg, [mass])"),
        ("C", "km", "cannot convert 'C' (°C, [temperature])"),
        ("GB", "hours", "they measure different things"),
    ],
)
def test_refusals_name_the_unit_and_suggest_examples(
    from_unit: str, to_unit: str, expected: str
) -> None:
    tool = make_unit_converter()
    with pytest.raises(ToolException) as info:
        tool.invoke({"value": 1, "from_unit": from_unit, "to_unit": to_unit})
    assert expected in str(info.value)
    assert "5 km to miles" in str(info.value)


def test_refuses_non_finite_values() -> None:
    with pytest.raises(ToolException, match="finite"):
        units.convert(float("nan"), "km", "m")


@pytest.mark.parametrize(
    ("value", "text"),
    [(37.77777, "37.78"), (1.609344, "1.609"), (0.00104858, "0.001049"), (1234.5678, "1234.57"),
     (3.0, "3"), (0, "0"), (-2.5, "-2.5"), (2e-7, "2e-07"), (4.2e18, "4.2e+18")],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text


def test_tool_schema_and_description() -> None:
    tool = make_unit_converter()
    assert tool.name == "convert_units"
    assert "5 km to miles" in tool.description and "100 F to C" in tool.description
    assert set(tool.args) == {"value", "from_unit", "to_unit"}
    assert tool.args["value"]["type"] == "number"


def test_registry_is_lazy() -> None:
    """Importing the module and building the tool must not import pint (CLI start-up)."""
    code = (
        "import sys; from bulwark.tools.units import make_unit_converter; "
        "make_unit_converter(); assert 'pint' not in sys.modules, 'pint imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_is_built_once_even_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    import pint

    built: list[object] = []
    real = pint.UnitRegistry

    def counting(*args: object, **kwargs: object) -> object:
        registry = real(*args, **kwargs)
        built.append(registry)
        return registry

    monkeypatch.setattr(units, "_registry", None)
    monkeypatch.setattr(pint, "UnitRegistry", counting)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(units.unit_registry()))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert all(r is built[0] for r in results)
    assert units.unit_registry() is built[0]
