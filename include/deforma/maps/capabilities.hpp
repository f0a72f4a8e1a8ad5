#pragma once
// OGC capabilities documents of the map server: WMTS 1.0.0 (REST ResourceURL templates, the three tile
// matrix sets in their CRS's axis order, a default Style with its LegendURL, a time Dimension for series)
// and WMS 1.3.0 (GetMap in several CRS, GetFeatureInfo as JSON, legends); and the WMS request parameters
// whose meaning depends on the CRS (BBOX axis order).
#include <string>
#include <vector>

#include "deforma/maps/tms.hpp"

namespace deforma::maps {

/// A layer as the capabilities list it: one raster item, or one collection drawn as a mosaic.
struct LayerInfo {
  std::string name;  ///< WMS/WMTS identifier: "COLLECTION:ITEM", or "COLLECTION" for a mosaic
  std::string title;
  std::string abstract;
  Bounds lonlat;     ///< WGS84 bounding box
  std::string path;  ///< "/collections/C/items/I" or "/collections/C" (tiles and legend below it)
  std::vector<std::string> times;  ///< values of the time dimension (ISO dates); empty = none
  std::string default_time;
};

/// The WMTS 1.0.0 capabilities document; URLs start with `base_url` (scheme://host[/prefix]).
std::string wmts_capabilities(const std::vector<LayerInfo>& layers, const std::string& base_url);

/// The WMS 1.3.0 capabilities document.
std::string wms_capabilities(const std::vector<LayerInfo>& layers, const std::string& base_url);

/// CRS codes GetMap accepts, as WMS names them.
const std::vector<std::string>& wms_crs_codes();

/// A WMS CRS code ("EPSG:3857", "CRS:84"...) and a BBOX text in the axis order of that version: returns
/// the CRS as GDAL takes it and the bounds in easting/longitude, northing/latitude order. For 1.3.0,
/// BBOX follows the CRS's axis order (latitude first for EPSG:4326, northing first for EPSG:3035).
/// Throws InvalidArgument naming CRS or BBOX.
std::string wms_crs_and_bounds(const std::string& crs_code, const std::string& bbox,
                               const std::string& version, Bounds& bounds);

/// An OGC WMS ServiceExceptionReport (XML) with `code` (InvalidParameterValue, LayerNotDefined...).
std::string wms_exception(const std::string& code, const std::string& message);

/// An OWS 1.1 ExceptionReport (WMTS KVP errors): `code` (MissingParameterValue, InvalidParameterValue,
/// TileOutOfRange...), the parameter at fault in `locator` (may be empty) and the message.
std::string ows_exception(const std::string& code, const std::string& locator, const std::string& message);

}  // namespace deforma::maps
