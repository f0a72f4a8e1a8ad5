#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets from small samples of the real data set (docs/fuzzing.md).

Usage: make_seeds.py DATA_DIR OUT_DIR
Creates OUT_DIR/<target>/ for each target; samples are cut small (a header and a few rows, a few
polygons) because libFuzzer mutates small inputs much faster than whole files. Missing data sets are
skipped: the hand-written seeds of tests/fuzz/seeds/ are enough to start.
"""
import io
import json
import pathlib
import sys
import zipfile


def write(out: pathlib.Path, target: str, name: str, data: bytes) -> None:
    folder = out / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def head_lines(data: bytes, count: int) -> bytes:
    return b"".join(data.splitlines(keepends=True)[:count])


def egms_seeds(data: pathlib.Path, out: pathlib.Path) -> None:
    for product in sorted((data / "egms-ustica").glob("EGMS_*.zip")):
        with zipfile.ZipFile(product) as archive:
            csv_name = next(n for n in archive.namelist() if n.endswith(".csv"))
            xml_names = [n for n in archive.namelist() if n.endswith(".xml")]
            with archive.open(csv_name) as stream:
                sample = b"".join(stream.readline() for _ in range(4))
            xml = archive.read(xml_names[0]) if xml_names else b""
        write(out, "egms_product_fuzz", product.stem + ".csv", sample)
        # The same rows in a zip, as EGMS distributes them, with the product's XML metadata.
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(product.stem + ".csv", sample)
            if xml:
                archive.writestr(product.stem + ".xml", xml)
        write(out, "egms_product_fuzz", product.stem + ".zip", buffer.getvalue())


def gnss_seeds(data: pathlib.Path, out: pathlib.Path) -> None:
    for table in sorted((data / "alps-gnss").glob("*.csv")):
        write(out, "gnss_fuzz", table.name, head_lines(table.read_bytes(), 6))


def shorten_rings(geometry: dict, points: int = 12) -> None:
    """Keeps the first points of every ring of a GeoJSON (Multi)Polygon, closing it again."""
    def shorten(ring):
        return ring[:points] + [ring[0]] if len(ring) > points + 1 else ring

    if geometry.get("type") == "Polygon":
        geometry["coordinates"] = [shorten(r) for r in geometry["coordinates"]]
    elif geometry.get("type") == "MultiPolygon":
        geometry["coordinates"] = [[shorten(r) for r in p] for p in geometry["coordinates"]]


def polygon_seeds(data: pathlib.Path, out: pathlib.Path) -> None:
    for gmt in sorted(data.glob("*/*.gmt")):
        # The first few polygons: cut before the '>' that opens the fourth.
        lines = gmt.read_bytes().splitlines(keepends=True)
        starts = [i for i, line in enumerate(lines) if line.startswith(b">")]
        end = starts[3] if len(starts) > 3 else len(lines)
        write(out, "polygons_fuzz", gmt.name, b"".join(lines[: min(end, 200)]))
    for geojson in sorted(data.glob("*/*.geojson")):
        collection = json.loads(geojson.read_bytes())
        collection["features"] = collection.get("features", [])[:2]
        for feature in collection["features"]:
            shorten_rings(feature.get("geometry") or {})
        write(out, "polygons_fuzz", geojson.name, json.dumps(collection).encode())


def date_seeds(data: pathlib.Path, out: pathlib.Path) -> None:
    # File names of the data set (Landsat, Sentinel-1/2, dated JPEGs) and the Landsat MTL files.
    names = sorted({p.name for p in data.rglob("*")})
    for index, name in enumerate(names):
        write(out, "dates_fuzz", f"name-{index:03d}", name.encode())
    for mtl in sorted(data.glob("*/*_MTL.txt")):
        write(out, "dates_fuzz", mtl.name, mtl.read_bytes())


def pair_seeds(data: pathlib.Path, out: pathlib.Path) -> None:
    # A pair table over the dated JPEGs of the image time series, as `pairs` writes it.
    images = sorted((data / "perito-moreno").glob("2020*.jpg"))[:6]
    if len(images) < 2:
        return
    rows = ["id,ref_path,sec_path,ref_date,sec_date,result_path,weight"]
    for ref, sec in zip(images, images[1:]):
        ref_date = f"{ref.stem[:4]}-{ref.stem[4:6]}-{ref.stem[6:]}"
        sec_date = f"{sec.stem[:4]}-{sec.stem[4:6]}-{sec.stem[6:]}"
        rows.append(f"{ref.stem}_{sec.stem},{ref.name},{sec.name},{ref_date},{sec_date},,1")
    write(out, "pair_table_fuzz", "perito-moreno-pairs.csv", ("\n".join(rows) + "\n").encode())


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    data, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    for make in (egms_seeds, gnss_seeds, polygon_seeds, date_seeds, pair_seeds):
        try:
            make(data, out)
        except (OSError, ValueError, StopIteration, zipfile.BadZipFile) as error:
            print(f"make_seeds: {make.__name__} skipped: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
