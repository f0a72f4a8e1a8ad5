#include "deforma/maps/capabilities.hpp"

#include <cpl_string.h>

#include <cmath>
#include <sstream>

#include <fmt/format.h>
#include <ogr_srs_api.h>

#include "deforma/core/error.hpp"

namespace deforma::maps {
namespace {

// Text and attribute values made safe for XML by GDAL's escaper (&, <, >, ").
std::string xml(const std::string& text) {
  char* escaped = CPLEscapeString(text.c_str(), static_cast<int>(text.size()), CPLES_XML);
  std::string out = escaped;
  CPLFree(escaped);
  return out;
}

std::string num(double v) {
  return fmt::format("{:.10g}", v);
}

// WMTS lists zooms up to these (deeper ones still answer): enough for 0.6 m (web) or 0.1 m pixels.
int listed_max_zoom(const TileMatrixSet& tms) {
  return std::min(tms.max_zoom, tms.geographic ? 18 : 18);
}

std::string corner(const TileMatrixSet& tms, double x, double y) {
  return tms.northing_first ? num(y) + " " + num(x) : num(x) + " " + num(y);
}

}  // namespace

std::string wmts_capabilities(const std::vector<LayerInfo>& layers, const std::string& base) {
  std::ostringstream o;
  o << R"(<?xml version="1.0" encoding="UTF-8"?>
<Capabilities xmlns="http://www.opengis.net/wmts/1.0" xmlns:ows="http://www.opengis.net/ows/1.1" )"
    << R"(xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" )"
    << R"(xmlns:gml="http://www.opengis.net/gml" )"
    << R"(xsi:schemaLocation="http://www.opengis.net/wmts/1.0 http://schemas.opengis.net/wmts/1.0/wmtsGetCapabilities_response.xsd" version="1.0.0">
  <ows:ServiceIdentification>
    <ows:Title>deforma map server</ows:Title>
    <ows:Abstract>Ground-motion products and scenes of the deforma catalogue as tiles</ows:Abstract>
    <ows:ServiceType>OGC WMTS</ows:ServiceType>
    <ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion>
  </ows:ServiceIdentification>
  <ows:OperationsMetadata>
)";
  // Both bindings: REST (the ResourceURL templates below) and KVP (/wmts?SERVICE=WMTS&REQUEST=...).
  auto operation = [&](const std::string& name, const std::string& rest_url) {
    o << "    <ows:Operation name=\"" << name << "\"><ows:DCP><ows:HTTP>"
      << "<ows:Get xlink:href=\"" << xml(rest_url) << "\"><ows:Constraint name=\"GetEncoding\">"
      << "<ows:AllowedValues><ows:Value>RESTful</ows:Value></ows:AllowedValues></ows:Constraint></ows:Get>"
      << "<ows:Get xlink:href=\"" << xml(base + "/wmts?") << "\"><ows:Constraint name=\"GetEncoding\">"
      << "<ows:AllowedValues><ows:Value>KVP</ows:Value></ows:AllowedValues></ows:Constraint></ows:Get>"
      << "</ows:HTTP></ows:DCP></ows:Operation>\n";
  };
  operation("GetCapabilities", base + "/wmts/1.0.0/WMTSCapabilities.xml");
  operation("GetTile", base + "/wmts/1.0.0/");
  o << R"(  </ows:OperationsMetadata>
  <Contents>
)";
  for (const auto& l : layers) {
    o << "    <Layer>\n      <ows:Title>" << xml(l.title) << "</ows:Title>\n";
    if (!l.abstract.empty()) o << "      <ows:Abstract>" << xml(l.abstract) << "</ows:Abstract>\n";
    o << "      <ows:WGS84BoundingBox><ows:LowerCorner>" << num(l.lonlat.min_x) << " " << num(l.lonlat.min_y)
      << "</ows:LowerCorner><ows:UpperCorner>" << num(l.lonlat.max_x) << " " << num(l.lonlat.max_y)
      << "</ows:UpperCorner></ows:WGS84BoundingBox>\n";
    o << "      <ows:Identifier>" << xml(l.name) << "</ows:Identifier>\n";
    o << "      <Style isDefault=\"true\"><ows:Identifier>default</ows:Identifier>"
      << "<LegendURL format=\"image/png\" xlink:href=\"" << xml(base + l.path + "/legend.png")
      << "\"/></Style>\n";
    o << "      <Format>image/png</Format>\n      <Format>image/webp</Format>\n";
    o << "      <InfoFormat>application/json</InfoFormat>\n";
    const bool timed = !l.times.empty();
    if (timed) {
      o << "      <Dimension><ows:Identifier>Time</ows:Identifier><ows:UOM>ISO8601</ows:UOM><Default>"
        << xml(l.default_time.empty() ? l.times.back() : l.default_time) << "</Default>";
      for (const auto& t : l.times) o << "<Value>" << xml(t) << "</Value>";
      o << "</Dimension>\n";
    }
    for (const auto& tms : tile_matrix_sets())
      o << "      <TileMatrixSetLink><TileMatrixSet>" << tms.id << "</TileMatrixSet></TileMatrixSetLink>\n";
    for (const std::string ext : {"png", "webp"}) {
      o << "      <ResourceURL format=\"image/" << ext << "\" resourceType=\"tile\" template=\""
        << xml(base + l.path + "/tiles/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}." + ext +
               (timed ? "?datetime={Time}" : ""))
        << "\"/>\n";
    }
    o << "    </Layer>\n";
  }
  for (const auto& tms : tile_matrix_sets()) {
    o << "    <TileMatrixSet>\n      <ows:Title>" << xml(tms.title) << "</ows:Title>\n      <ows:Identifier>"
      << tms.id << "</ows:Identifier>\n";
    o << "      <ows:BoundingBox crs=\"" << tms.crs_urn << "\"><ows:LowerCorner>"
      << corner(tms, tms.bounds.min_x, tms.bounds.min_y) << "</ows:LowerCorner><ows:UpperCorner>"
      << corner(tms, tms.bounds.max_x, tms.bounds.max_y) << "</ows:UpperCorner></ows:BoundingBox>\n";
    o << "      <ows:SupportedCRS>" << tms.crs_urn << "</ows:SupportedCRS>\n";
    if (!tms.well_known_scale_set.empty())
      o << "      <WellKnownScaleSet>" << tms.well_known_scale_set << "</WellKnownScaleSet>\n";
    for (int z = 0; z <= listed_max_zoom(tms); ++z) {
      o << "      <TileMatrix><ows:Identifier>" << z << "</ows:Identifier><ScaleDenominator>"
        << fmt::format("{:.17g}", tms.scale_denominator(z)) << "</ScaleDenominator><TopLeftCorner>"
        << corner(tms, tms.origin_x, tms.origin_y) << "</TopLeftCorner><TileWidth>256</TileWidth>"
        << "<TileHeight>256</TileHeight><MatrixWidth>" << tms.matrix_width(z)
        << "</MatrixWidth><MatrixHeight>" << tms.matrix_height(z) << "</MatrixHeight></TileMatrix>\n";
    }
    o << "    </TileMatrixSet>\n";
  }
  o << "  </Contents>\n  <ServiceMetadataURL xlink:href=\"" << xml(base)
    << "/wmts/1.0.0/WMTSCapabilities.xml\"/>\n</Capabilities>\n";
  return o.str();
}

const std::vector<std::string>& wms_crs_codes() {
  static const std::vector<std::string> codes{"EPSG:3857",  "EPSG:4326",  "CRS:84",     "EPSG:3035",
                                              "EPSG:32632", "EPSG:32633", "EPSG:32607", "EPSG:2154",
                                              "EPSG:25832", "EPSG:25833"};
  return codes;
}

std::string wms_capabilities(const std::vector<LayerInfo>& layers, const std::string& base) {
  const std::string url = xml(base + "/wms?");
  std::ostringstream o;
  o << R"(<?xml version="1.0" encoding="UTF-8"?>
<WMS_Capabilities version="1.3.0" xmlns="http://www.opengis.net/wms" xmlns:xlink="http://www.w3.org/1999/xlink" )"
    << R"(xmlns:sld="http://www.opengis.net/sld" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" )"
    << R"(xsi:schemaLocation="http://www.opengis.net/wms http://schemas.opengis.net/wms/1.3.0/capabilities_1_3_0.xsd">
  <Service>
    <Name>WMS</Name>
    <Title>deforma map server</Title>
    <Abstract>Ground-motion products and scenes of the deforma catalogue</Abstract>
    <OnlineResource xlink:type="simple" xlink:href=")"
    << url << R"("/>
    <Fees>none</Fees>
    <AccessConstraints>none</AccessConstraints>
    <MaxWidth>4096</MaxWidth>
    <MaxHeight>4096</MaxHeight>
  </Service>
  <Capability>
    <Request>
)";
  auto op = [&](const std::string& name, const std::vector<std::string>& formats,
                const std::string& prefix = "") {
    o << "      <" << prefix << name << ">";
    for (const auto& f : formats) o << "<Format>" << f << "</Format>";
    o << "<DCPType><HTTP><Get><OnlineResource xlink:type=\"simple\" xlink:href=\"" << url
      << "\"/></Get></HTTP></DCPType></" << prefix << name << ">\n";
  };
  op("GetCapabilities", {"text/xml"});
  op("GetMap", {"image/png", "image/webp"});
  op("GetFeatureInfo", {"application/json"});
  op("GetLegendGraphic", {"image/png", "application/json"}, "sld:");
  o << "    </Request>\n    <Exception><Format>XML</Format></Exception>\n";
  o << "    <Layer>\n      <Title>deforma</Title>\n";
  for (const auto& crs : wms_crs_codes()) o << "      <CRS>" << crs << "</CRS>\n";
  Bounds all{180, 90, -180, -90};
  for (const auto& l : layers) {
    all = {std::min(all.min_x, l.lonlat.min_x), std::min(all.min_y, l.lonlat.min_y),
           std::max(all.max_x, l.lonlat.max_x), std::max(all.max_y, l.lonlat.max_y)};
  }
  if (layers.empty()) all = {-180, -90, 180, 90};
  auto geo_box = [&](const Bounds& b) {
    o << "<EX_GeographicBoundingBox><westBoundLongitude>" << num(b.min_x) << "</westBoundLongitude>"
      << "<eastBoundLongitude>" << num(b.max_x) << "</eastBoundLongitude><southBoundLatitude>" << num(b.min_y)
      << "</southBoundLatitude><northBoundLatitude>" << num(b.max_y) << "</northBoundLatitude>"
      << "</EX_GeographicBoundingBox>";
    // EPSG:4326 in WMS 1.3.0 is latitude first.
    o << "<BoundingBox CRS=\"EPSG:4326\" minx=\"" << num(b.min_y) << "\" miny=\"" << num(b.min_x)
      << "\" maxx=\"" << num(b.max_y) << "\" maxy=\"" << num(b.max_x) << "\"/>";
    o << "<BoundingBox CRS=\"CRS:84\" minx=\"" << num(b.min_x) << "\" miny=\"" << num(b.min_y) << "\" maxx=\""
      << num(b.max_x) << "\" maxy=\"" << num(b.max_y) << "\"/>";
  };
  o << "      ";
  geo_box(all);
  o << "\n";
  for (const auto& l : layers) {
    o << "      <Layer queryable=\"1\" opaque=\"0\">\n        <Name>" << xml(l.name)
      << "</Name>\n        <Title>" << xml(l.title) << "</Title>\n";
    if (!l.abstract.empty()) o << "        <Abstract>" << xml(l.abstract) << "</Abstract>\n";
    o << "        ";
    geo_box(l.lonlat);
    o << "\n";
    if (!l.times.empty()) {
      std::string values;
      for (const auto& t : l.times) values += (values.empty() ? "" : ",") + t;
      o << "        <Dimension name=\"time\" units=\"ISO8601\" default=\""
        << xml(l.default_time.empty() ? l.times.back() : l.default_time) << "\">" << xml(values)
        << "</Dimension>\n";
    }
    // The default style colours by the data; the named ones force a colour map (GetMap's STYLES).
    for (const std::string style : {"default", "sequential", "diverging"}) {
      const std::string legend =
          base + l.path + "/legend.png" + (style == "default" ? "" : "?colormap=" + style);
      o << "        <Style><Name>" << style << "</Name><Title>" << style << "</Title><LegendURL width=\""
        << 120 << "\" height=\"240\">"
        << "<Format>image/png</Format><OnlineResource xlink:type=\"simple\" xlink:href=\"" << xml(legend)
        << "\"/></LegendURL></Style>\n";
    }
    o << "      </Layer>\n";
  }
  o << "    </Layer>\n  </Capability>\n</WMS_Capabilities>\n";
  return o.str();
}

std::string wms_crs_and_bounds(const std::string& crs_code, const std::string& bbox,
                               const std::string& version, Bounds& bounds) {
  std::vector<double> v;
  std::stringstream ss(bbox);
  for (std::string part; std::getline(ss, part, ',');) {
    try {
      std::size_t used = 0;
      v.push_back(std::stod(part, &used));
      if (used != part.size() || !std::isfinite(v.back())) throw std::invalid_argument("x");
    } catch (const std::exception&) {
      throw InvalidArgument(fmt::format("BBOX '{}': expected four numbers minx,miny,maxx,maxy", bbox));
    }
  }
  if (v.size() != 4)
    throw InvalidArgument(fmt::format("BBOX '{}': expected four numbers minx,miny,maxx,maxy", bbox));
  std::string upper = crs_code;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string gdal_crs;
  bool swap = false;
  if (upper == "CRS:84" || upper == "OGC:CRS84") {
    gdal_crs = "OGC:CRS84";
  } else if (upper.rfind("EPSG:", 0) == 0) {
    gdal_crs = upper;
    OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
    int code = 0;
    try {
      code = std::stoi(upper.substr(5));
    } catch (const std::exception&) {
      code = -1;
    }
    if (code <= 0 || OSRImportFromEPSG(srs, code) != OGRERR_NONE) {
      OSRDestroySpatialReference(srs);
      throw InvalidArgument(fmt::format("CRS '{}' is not an EPSG code this server knows", crs_code));
    }
    // WMS 1.3.0 follows the EPSG axis order; 1.1.1 is always x,y.
    swap = version != "1.1.1" && version != "1.1.0" &&
           (OSREPSGTreatsAsLatLong(srs) || OSREPSGTreatsAsNorthingEasting(srs));
    OSRDestroySpatialReference(srs);
  } else {
    throw InvalidArgument(fmt::format("CRS '{}': expected CRS:84 or EPSG:code", crs_code));
  }
  bounds = swap ? Bounds{v[1], v[0], v[3], v[2]} : Bounds{v[0], v[1], v[2], v[3]};
  if (!(bounds.min_x < bounds.max_x) || !(bounds.min_y < bounds.max_y))
    throw InvalidArgument(fmt::format("BBOX '{}': expected min < max on both axes", bbox));
  return gdal_crs;
}

std::string wms_exception(const std::string& code, const std::string& message) {
  return R"(<?xml version="1.0" encoding="UTF-8"?>
<ServiceExceptionReport version="1.3.0" xmlns="http://www.opengis.net/ogc"><ServiceException code=")" +
         xml(code) + "\">" + xml(message) + "</ServiceException></ServiceExceptionReport>\n";
}

std::string ows_exception(const std::string& code, const std::string& locator, const std::string& message) {
  return R"(<?xml version="1.0" encoding="UTF-8"?>
<ExceptionReport xmlns="http://www.opengis.net/ows/1.1" version="1.1.0" xml:lang="en"><Exception exceptionCode=")" +
         xml(code) + "\"" + (locator.empty() ? "" : " locator=\"" + xml(locator) + "\"") +
         "><ExceptionText>" + xml(message) + "</ExceptionText></Exception></ExceptionReport>\n";
}

}  // namespace deforma::maps
