"""`[tuisup.export]`: the image export uses, read and checked with the rest of the manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuisup.manifest import ManifestError, load_manifest

SERVICE = '[services.web]\ncommand = "true"\n'


def load(tmp_path: Path, text: str) -> list[str] | str | None:
    path = tmp_path / "services.toml"
    path.write_text(text)
    try:
        return load_manifest(path).settings.export.image
    except ManifestError as exc:
        return [f"{p.line}:{p.col}: {p.key}: {p.message}" for p in exc.problems]


def test_an_export_image_is_read_from_the_tuisup_export_table(tmp_path: Path) -> None:
    text = f'[tuisup.export]\nimage = "python:3.13-alpine"\n{SERVICE}'
    assert load(tmp_path, text) == "python:3.13-alpine"


def test_without_the_table_the_image_is_left_to_export(tmp_path: Path) -> None:
    assert load(tmp_path, SERVICE) is None


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("image = 3", "2:9: tuisup.export.image: expected a string, got integer 3"),
        ('image = ""', '2:9: tuisup.export.image: expected an image name, got string ""'),
        ('imag = "x"', '2:1: tuisup.export.imag: unknown key "imag" (did you mean "image"?)'),
    ],
)
def test_a_bad_export_table_is_a_problem_at_its_line(
    tmp_path: Path, table: str, problem: str
) -> None:
    assert load(tmp_path, f"[tuisup.export]\n{table}\n{SERVICE}") == [problem]
