#pragma once
// The small lon/lat raster that the cloud-mask tests draw their masks and bands on.

#include <gdal_priv.h>
#include <ogr_spatialref.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"

namespace deforma::test {

/// Writes a 40 x 40 px GeoTIFF on a lon/lat grid from (10.0 E, 46.0 N) with 0.01° pixels (west half
/// 10.0-10.2, east half 10.2-10.4), pixel (x, y) holding value(x, y).
inline void write_lonlat_test_grid(const std::string& path, GDALDataType type,
                                   const std::function<double(int, int)>& value) {
  io::ensure_gdal_initialized();
  auto* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  std::unique_ptr<GDALDataset> ds(driver->Create(path.c_str(), 40, 40, 1, type, nullptr));
  ASSERT_TRUE(ds);
  double gt[6] = {10.0, 0.01, 0, 46.0, 0, -0.01};
  ds->SetGeoTransform(gt);
  OGRSpatialReference wgs84;
  wgs84.importFromEPSG(4326);
  ds->SetSpatialRef(&wgs84);
  std::vector<double> v(40 * 40);
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 40; ++x) v[y * 40 + x] = value(x, y);
  ASSERT_EQ(ds->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, 40, 40, v.data(), 40, 40, GDT_Float64, 0, 0),
            CE_None);
}

}  // namespace deforma::test
