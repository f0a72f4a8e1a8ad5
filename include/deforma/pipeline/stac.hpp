#pragma once
// The output folder of a pipeline run as a static STAC catalog (SpatioTemporal Asset Catalog, core
// specification v1.0.0, https://stacspec.org; projection extension v2.0.0,
// https://stac-extensions.github.io/projection/v2.0.0/schema.json, whose `proj:code` replaces v1's
// `proj:epsg`). A catalog.json at the root links one Item per product; each Item lists its files as
// assets, with the datetime range of the data (start_datetime/end_datetime), its footprint in WGS84
// (geometry and bbox) and the CRS of its rasters (proj:code, proj:shape, proj:transform). Every href is
// relative, so the folder can be moved or served as is (a catalogue or map server can crawl it later).
//
// Rasters without georeferencing (pixel units) get a null geometry and no bbox, as STAC allows for data
// not located on Earth, and proj:code null.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/io/dates.hpp"

namespace deforma::pipeline {

inline constexpr const char* kStacVersion = "1.0.0";
inline constexpr const char* kStacProjectionSchema =
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json";

/// One file of an Item.
struct StacAsset {
  std::string key;  ///< asset key in the Item ("velocity_east", "quicklook"...)
  std::string
      path;  ///< the file, absolute or relative to the current folder; it must lie in the catalog folder
  std::string title;
  std::string media_type;          ///< empty: guessed from the extension (.tif COG, .png, .csv, .json, .nc)
  std::vector<std::string> roles;  ///< "data", "overview", "metadata"...
  nlohmann::json extra = nlohmann::json::object();  ///< more asset fields (e.g. "unit")
};

/// One product.
struct StacItem {
  std::string id;  ///< unique in the catalog; also the name of its folder
  std::string title;
  std::string description;
  io::Date start;  ///< first acquisition the product depends on
  io::Date end;    ///< last acquisition
  /// A raster whose footprint and CRS describe the Item (normally its main data asset). Empty: no geometry.
  std::string footprint_raster;
  nlohmann::json properties = nlohmann::json::object();  ///< more properties (deforma:* figures...)
  std::vector<StacAsset> assets;
};

struct StacCatalog {
  std::string id;
  std::string title;
  std::string description;
  std::vector<StacItem> items;
};

/// The metadata assets of tables written side by side in several formats (glaciers.csv and glaciers.json):
/// the key is the file's stem, with "_report" for the JSON, so that no file replaces another in the Item.
std::vector<StacAsset> table_assets(const std::vector<std::string>& files);

/// Geometry (GeoJSON Polygon in WGS84 longitude/latitude, edges densified), bbox [west, south, east, north]
/// and projection fields (proj:code, proj:shape, proj:transform) of a raster; for a raster without
/// georeferencing: {"geometry": null, "proj:code": null, "proj:shape": [...]}. Throws IoError/FormatError
/// naming the file.
nlohmann::json raster_footprint(const std::string& raster_path);

/// The STAC Item of `item` as JSON, its hrefs relative to `item_folder` (where the Item file will be).
nlohmann::json stac_item_json(const StacItem& item, const std::string& item_folder,
                              const std::string& catalog_path);

/// Writes `folder`/catalog.json and `folder`/<id>/<id>.json for every Item (each file written atomically).
/// Throws InvalidArgument when two Items share an id or an asset lies outside `folder`, IoError when a file
/// cannot be written or an asset is missing. Returns the paths written (catalog first).
std::vector<std::string> write_stac_catalog(const std::string& folder, const StacCatalog& catalog);

}  // namespace deforma::pipeline
