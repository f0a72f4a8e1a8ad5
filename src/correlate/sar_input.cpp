// SAR products as correlation inputs: recognition, times, polarizations, SAFE layout, and the preparation
// of a pair on a common map grid (include/deforma/correlate/sar.hpp).
#include "deforma/correlate/sar.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include <unistd.h>

#include <cpl_minixml.h>
#include <cpl_vsi.h>
#include <fmt/format.h>
#include <gdal_priv.h>
#include <spdlog/spdlog.h>

#include "deforma/core/error.hpp"
#include "deforma/correlate/correlate.hpp"

namespace deforma::correlate {
namespace fs = std::filesystem;
namespace {

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

bool ends_with_ci(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && upper(text.substr(text.size() - suffix.size())) == upper(suffix);
}

// "2016-10-05T10:18:35.812311", "2016-10-05 10:18:35Z", "20161005T101835": seconds since the epoch (UTC).
std::optional<double> parse_utc(const std::string& text) {
  static const std::regex iso(R"((\d{4})-?(\d{2})-?(\d{2})[T ](\d{2}):?(\d{2}):?(\d{2})(\.\d+)?Z?)");
  std::smatch m;
  if (!std::regex_search(text, m, iso)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return std::nullopt;
  double seconds = static_cast<double>(timegm(&tm));
  if (m[7].matched) seconds += std::stod("0" + m[7].str());
  return seconds;
}

// Sentinel-1 product names: S1A_EW_GRDM_1SDH_20161005T142446[_...]; the polarization code SH/SV (single),
// DH/DV (dual), HH/VV/HV/VH (single, partial).
struct S1Name {
  bool matched = false;
  std::string platform, mode, type, polarizations;
  std::optional<double> time_s;
  int absolute_orbit = 0;  ///< full product names only (after the stop time)
};

S1Name parse_s1_name(const std::string& name) {
  static const std::regex product(
      R"((S1[A-D])_([A-Z0-9]{2})_([A-Z]{3})[A-Z_]_[0-9][SA]([A-Z]{2})_(\d{8}T\d{6})(?:_\d{8}T\d{6}_(\d{6}))?)");
  // Measurement files: s1a-ew-grd-hv-20161005t142446-20161005t142546-013347-0155a5-002.tiff.
  static const std::regex measurement(
      R"((s1[a-d])-([a-z0-9]+)-(grd|slc)-(hh|hv|vv|vh)-(\d{8}t\d{6})(?:-\d{8}t\d{6}-(\d{6}))?)");
  S1Name out;
  std::smatch m;
  if (std::regex_search(name, m, product)) {
    out.matched = true;
    out.platform = m[1];
    out.mode = m[2];
    out.type = m[3];
    const std::string code = m[4];
    out.polarizations = code == "SH"   ? "HH"
                        : code == "SV" ? "VV"
                        : code == "DH" ? "HH+HV"
                        : code == "DV" ? "VV+VH"
                                       : code;
    out.time_s = parse_utc(m[5]);
    if (m[6].matched) out.absolute_orbit = std::stoi(m[6]);
  } else if (std::regex_search(name, m, measurement)) {
    out.matched = true;
    out.platform = upper(m[1]);
    out.mode = upper(m[2]);
    out.type = upper(m[3]);
    out.polarizations = upper(m[4]);
    out.time_s = parse_utc(upper(m[5]));
    if (m[6].matched) out.absolute_orbit = std::stoi(m[6]);
  }
  return out;
}

// A polarization named at the end of a band name or description: "sigma0_HV", "Amplitude_VV", "HH".
std::string polarization_in(const std::string& text) {
  static const std::regex pol(R"((?:^|[_\s-])(HH|HV|VV|VH)$)", std::regex::icase);
  std::smatch m;
  if (std::regex_search(text, m, pol)) return upper(m[1]);
  return "";
}

std::string xml_value(CPLXMLNode* root, const char* path) {
  const char* v = CPLGetXMLValue(root, path, nullptr);
  return v ? v : "";
}

// The files of a SAFE product: its root (folder or /vsizip/ path) and relative file names.
struct SafeLayout {
  std::string root;
  std::vector<std::string> files;
};

std::optional<SafeLayout> safe_layout(const std::string& path) {
  std::string root;
  std::error_code ec;
  if (fs::path(path).filename() == "manifest.safe") {
    root = fs::path(path).parent_path().string();
  } else if (fs::is_directory(path, ec) && fs::exists(fs::path(path) / "manifest.safe", ec)) {
    root = path;
  } else if (ends_with_ci(path, ".zip") && fs::is_regular_file(path, ec)) {
    // The zip holds NAME.SAFE/manifest.safe.
    const std::string zip = "/vsizip/" + path;
    char** entries = VSIReadDir(zip.c_str());
    for (int k = 0; entries && entries[k]; ++k) {
      VSIStatBufL stat;
      const std::string candidate = zip + "/" + entries[k];
      if (VSIStatL((candidate + "/manifest.safe").c_str(), &stat) == 0) root = candidate;
    }
    CSLDestroy(entries);
    if (root.empty()) {
      throw FormatError(
          fmt::format("{}: a zip without NAME.SAFE/manifest.safe; expected a Sentinel-1 SAFE product", path));
    }
  } else {
    return std::nullopt;
  }
  SafeLayout layout;
  layout.root = root;
  char** files = VSIReadDirRecursive(root.c_str());
  for (int k = 0; files && files[k]; ++k) layout.files.push_back(files[k]);
  CSLDestroy(files);
  return layout;
}

std::string read_text(const std::string& path) {
  VSILFILE* f = VSIFOpenL(path.c_str(), "rb");
  if (!f) throw IoError(fmt::format("{}: cannot read", path));
  std::string text;
  char buffer[65536];
  std::size_t n;
  while ((n = VSIFReadL(buffer, 1, sizeof buffer, f)) > 0) text.append(buffer, n);
  VSIFCloseL(f);
  return text;
}

// A Sentinel-1 SAFE product: the measurement of one polarization, its annotation (platform, polarization,
// start time, geolocation grid) and the manifest's relative orbit. When the measurement file carries no
// GCPs (not the case of ESA's GRD tiffs, but of re-packaged ones), a VRT in `scratch` adds the
// annotation's geolocation grid.
SarProduct inspect_safe(const std::string& path, const SafeLayout& layout, const std::string& wanted,
                        const std::string& scratch) {
  SarProduct product;
  product.path = path;
  product.sar = true;
  struct Measurement {
    std::string tiff, annotation, polarization;
  };
  std::vector<Measurement> measurements;
  for (const auto& f : layout.files) {
    const std::string name = fs::path(f).filename().string();
    const std::string folder = fs::path(f).parent_path().string();
    if (folder != "measurement" || !(ends_with_ci(name, ".tiff") || ends_with_ci(name, ".tif"))) continue;
    Measurement m;
    m.tiff = layout.root + "/" + f;
    m.polarization = parse_s1_name(name).polarizations;
    const std::string stem = fs::path(name).stem().string();
    for (const auto& a : layout.files) {
      if (fs::path(a).parent_path() == "annotation" && fs::path(a).stem() == stem)
        m.annotation = layout.root + "/" + a;
    }
    measurements.push_back(m);
  }
  if (measurements.empty()) {
    throw FormatError(
        fmt::format("{}: no measurement/*.tiff in the SAFE product; expected a Sentinel-1 GRD", path));
  }
  const Measurement* chosen = nullptr;
  for (const auto& m : measurements) {
    if (!wanted.empty() ? m.polarization == upper(wanted)
                        : (m.polarization == "HV" || m.polarization == "VH"))
      chosen = &m;
  }
  if (!chosen && !wanted.empty()) {
    std::string have;
    for (const auto& m : measurements) have += (have.empty() ? "" : ", ") + m.polarization;
    throw InvalidArgument(fmt::format("{}: no {} measurement (it has {})", path, upper(wanted), have));
  }
  if (!chosen) chosen = &measurements.front();
  product.raster_path = chosen->tiff;
  product.polarization = chosen->polarization;
  if (chosen->annotation.empty()) {
    throw FormatError(fmt::format("{}: no annotation XML for {}; expected annotation/{}.xml", path,
                                  fs::path(chosen->tiff).filename().string(),
                                  fs::path(chosen->tiff).stem().string()));
  }
  std::unique_ptr<CPLXMLNode, decltype(&CPLDestroyXMLNode)> xml(
      CPLParseXMLString(read_text(chosen->annotation).c_str()), CPLDestroyXMLNode);
  if (!xml) throw FormatError(fmt::format("{}: not XML", chosen->annotation));
  CPLXMLNode* root = CPLGetXMLNode(xml.get(), "=product");
  if (!root)
    throw FormatError(
        fmt::format("{}: expected a Sentinel-1 annotation (root element <product>)", chosen->annotation));
  const std::string pol = upper(xml_value(root, "adsHeader.polarisation"));
  if (!pol.empty()) product.polarization = pol;
  if (const auto mission = xml_value(root, "adsHeader.missionId"); !mission.empty())
    product.platform = upper(mission);
  if (upper(xml_value(root, "adsHeader.productType")) == "SLC") product.complex = true;
  if (const auto t = parse_utc(xml_value(root, "adsHeader.startTime"))) {
    product.time_s = t;
    product.time_source = "annotation startTime";
  }
  // Relative orbit from the manifest (a plain search: the manifest's namespaces vary between versions).
  try {
    static const std::regex orbit(R"(relativeOrbitNumber[^>]*>\s*(\d+)\s*<)");
    const std::string manifest = read_text(layout.root + "/manifest.safe");
    std::smatch m;
    if (std::regex_search(manifest, m, orbit)) product.relative_orbit = m[1];
  } catch (const IoError&) {
    // A SAFE without a readable manifest still has its measurement and annotation.
  }
  if (product.relative_orbit.empty()) {
    const S1Name name = parse_s1_name(fs::path(layout.root).filename().string());
    const S1Name measurement_name = parse_s1_name(fs::path(chosen->tiff).filename().string());
    product.absolute_orbit = name.absolute_orbit ? name.absolute_orbit : measurement_name.absolute_orbit;
    if (product.platform.empty()) product.platform = name.matched ? name.platform : measurement_name.platform;
    if (const auto r = s1_relative_orbit(product.platform, product.absolute_orbit))
      product.relative_orbit = std::to_string(*r);
  }
  // GCPs: the measurement's own, else the annotation's geolocation grid.
  GDALAllRegister();
  CPLPushErrorHandler(CPLQuietErrorHandler);
  std::unique_ptr<GDALDataset> ds(
      GDALDataset::Open(product.raster_path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  CPLPopErrorHandler();
  if (!ds)
    throw FormatError(
        fmt::format("{}: its measurement {} is not a raster GDAL can read", path, product.raster_path));
  product.complex = product.complex || GDALDataTypeIsComplex(ds->GetRasterBand(1)->GetRasterDataType());
  double gt[6];
  const bool has_gt = ds->GetGeoTransform(gt) == CE_None;
  if (ds->GetGCPCount() >= 3) {
    product.gcps_only = !has_gt;
    return product;
  }
  std::vector<GDAL_GCP> gcps;
  CPLXMLNode* list = CPLGetXMLNode(root, "geolocationGrid.geolocationGridPointList");
  for (CPLXMLNode* p = list ? list->psChild : nullptr; p; p = p->psNext) {
    if (p->eType != CXT_Element || std::string(p->pszValue) != "geolocationGridPoint") continue;
    GDAL_GCP g{};
    g.pszId = const_cast<char*>("");
    g.pszInfo = const_cast<char*>("");
    g.dfGCPPixel = CPLAtof(CPLGetXMLValue(p, "pixel", "nan"));
    g.dfGCPLine = CPLAtof(CPLGetXMLValue(p, "line", "nan"));
    g.dfGCPX = CPLAtof(CPLGetXMLValue(p, "longitude", "nan"));
    g.dfGCPY = CPLAtof(CPLGetXMLValue(p, "latitude", "nan"));
    g.dfGCPZ = CPLAtof(CPLGetXMLValue(p, "height", "0"));
    if (std::isfinite(g.dfGCPPixel) && std::isfinite(g.dfGCPLine) && std::isfinite(g.dfGCPX) &&
        std::isfinite(g.dfGCPY))
      gcps.push_back(g);
  }
  if (gcps.size() < 3) {
    if (has_gt) return product;
    throw FormatError(
        fmt::format("{}: neither its measurement nor its annotation has ground control points "
                    "(expected annotation geolocationGrid/geolocationGridPointList)",
                    path));
  }
  if (scratch.empty()) return product;
  // A VRT copy of the measurement with the annotation's GCPs (WGS 84 longitude, latitude).
  const std::string vrt_path =
      fmt::format("{}/{}_gcps.vrt", scratch, fs::path(product.raster_path).stem().string());
  GDALDriver* vrt_driver = GetGDALDriverManager()->GetDriverByName("VRT");
  std::unique_ptr<GDALDataset> copy(
      vrt_driver->CreateCopy(vrt_path.c_str(), ds.get(), FALSE, nullptr, nullptr, nullptr));
  if (!copy) throw IoError(fmt::format("{}: cannot make a VRT of its measurement", path));
  OGRSpatialReference wgs84;
  wgs84.SetWellKnownGeogCS("WGS84");
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  copy->SetGCPs(static_cast<int>(gcps.size()), gcps.data(), &wgs84);
  copy.reset();
  product.raster_path = vrt_path;
  product.gcps_only = true;
  return product;
}

std::atomic<long long> scratch_counter{0};

}  // namespace

InputKind parse_input_kind(const std::string& text) {
  if (text == "auto") return InputKind::kAuto;
  if (text == "optical") return InputKind::kOptical;
  if (text == "sar") return InputKind::kSar;
  throw InvalidArgument(fmt::format("--input-kind '{}': expected auto, optical or sar", text));
}

std::string to_string(InputKind kind) {
  switch (kind) {
    case InputKind::kAuto:
      return "auto";
    case InputKind::kOptical:
      return "optical";
    case InputKind::kSar:
      return "sar";
  }
  return "auto";
}

SarProduct inspect_product(const std::string& path, const std::string& polarization) {
  SarProduct product;
  if (const auto layout = safe_layout(path)) return inspect_safe(path, *layout, polarization, "");
  product.path = product.raster_path = path;
  const S1Name name = parse_s1_name(fs::path(path).filename().string());
  if (name.matched) {
    product.sar = true;
    product.platform = name.platform;
    if (name.type == "SLC") product.complex = true;
    if (name.polarizations.size() == 2) product.polarization = name.polarizations;
    if (name.time_s) product.time_s = name.time_s, product.time_source = "Sentinel-1 file name";
    product.absolute_orbit = name.absolute_orbit;
    if (const auto r = s1_relative_orbit(name.platform, name.absolute_orbit))
      product.relative_orbit = std::to_string(*r);
  }
  GDALAllRegister();
  CPLPushErrorHandler(CPLQuietErrorHandler);
  std::unique_ptr<GDALDataset> ds(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  CPLPopErrorHandler();
  if (!ds) return product;  // whoever reads it reports why
  double gt[6];
  const bool has_gt = ds->GetGeoTransform(gt) == CE_None;
  product.gcps_only = !has_gt && ds->GetGCPCount() >= 3;
  bool floating = ds->GetRasterCount() > 0;
  for (int b = 1; b <= ds->GetRasterCount(); ++b) {
    GDALRasterBand* band = ds->GetRasterBand(b);
    const GDALDataType type = band->GetRasterDataType();
    if (GDALDataTypeIsComplex(type)) product.complex = true;
    if (type != GDT_Float32 && type != GDT_Float64) floating = false;
    // Polarization from the band's name or description ("sigma0_HV"), or a POLARISATION item.
    for (const char* key : {"name", "NETCDF_VARNAME", "POLARISATION", "POLARIZATION"}) {
      if (const char* v = band->GetMetadataItem(key); v && product.polarization.empty())
        product.polarization = polarization_in(v);
    }
    if (product.polarization.empty()) product.polarization = polarization_in(band->GetDescription());
  }
  for (const char* key : {"POLARISATION", "POLARIZATION"}) {
    if (const char* v = ds->GetMetadataItem(key); v && product.polarization.empty())
      product.polarization = polarization_in(v);
  }
  // Metadata naming a SAR instrument or mission.
  for (const char* key :
       {"instrument", "MISSION_ID", "SATELLITE_IDENTIFIER", "TIFFTAG_IMAGEDESCRIPTION", "platform"}) {
    const char* v = ds->GetMetadataItem(key);
    if (!v) continue;
    const std::string text = upper(v);
    if (text.find("SYNTHETIC APERTURE RADAR") != std::string::npos ||
        text.find("SENTINEL-1") != std::string::npos)
      product.sar = true;
  }
  // GCP-only floating-point backscatter: how GRD crops and re-packaged L1 SAR products come.
  if (product.gcps_only && floating) product.sar = true;
  for (const char* key : {"time_coverage_start", "ACQUISITION_START_TIME", "FIRST_LINE_TIME"}) {
    const char* v = ds->GetMetadataItem(key);
    if (!v) continue;
    if (const auto t = parse_utc(v)) {
      product.time_s = t;
      product.time_source = fmt::format("metadata item {}", key);
      break;
    }
  }
  return product;
}

std::optional<int> s1_relative_orbit(const std::string& platform, int absolute_orbit) {
  if (absolute_orbit <= 0) return std::nullopt;
  const std::string p = upper(platform);
  // The absolute orbit at which each satellite's relative orbit count starts again at 1.
  int offset = 0;
  if (p == "S1A") {
    offset = 73;
  } else if (p == "S1B") {
    offset = 27;
  } else {
    return std::nullopt;
  }
  return ((absolute_orbit - offset) % 175 + 175) % 175 + 1;
}

std::optional<double> acquisition_time_s(const std::string& path) {
  try {
    return inspect_product(path).time_s;
  } catch (const Error&) {
    return std::nullopt;
  }
}

MatchOptions sar_match_options(MatchOptions options) {
  options.min_snr = 1.3;
  options.min_corr = 0.1;
  return options;
}

InputKind resolve_input_kind(InputKind requested, const SarProduct& ref, const SarProduct& sec) {
  if (requested != InputKind::kAuto) return requested;
  if (ref.sar != sec.sar) {
    throw InvalidArgument(
        fmt::format("{} is {} and {} is {}: expected two images of the same kind, or "
                    "--input-kind sar|optical to say how to match them",
                    ref.path, ref.sar ? "SAR" : "not SAR", sec.path, sec.sar ? "SAR" : "not SAR"));
  }
  return ref.sar ? InputKind::kSar : InputKind::kOptical;
}

PreparedPair::PreparedPair(PreparedPair&& other) noexcept {
  *this = std::move(other);
}

PreparedPair& PreparedPair::operator=(PreparedPair&& other) noexcept {
  if (this != &other) {
    if (!scratch_.empty()) VSIRmdirRecursive(scratch_.c_str());
    ref_path = std::move(other.ref_path);
    sec_path = std::move(other.sec_path);
    ref_band = other.ref_band;
    sec_band = other.sec_band;
    kind = other.kind;
    map_grid = other.map_grid;
    grid = std::move(other.grid);
    gcp_transform = other.gcp_transform;
    polarization = std::move(other.polarization);
    scratch_ = std::move(other.scratch_);
    other.scratch_.clear();
  }
  return *this;
}

PreparedPair::~PreparedPair() {
  if (!scratch_.empty()) VSIRmdirRecursive(scratch_.c_str());
}

namespace {

struct PairFacts {
  SarProduct ref, sec;
  InputKind kind = InputKind::kOptical;
  bool map_grid = false;
};

PairFacts pair_facts(const std::string& ref_path, const std::string& sec_path,
                     const CorrelateOptions& options, const std::string& scratch) {
  PairFacts facts;
  auto inspect = [&](const std::string& path) {
    if (const auto layout = safe_layout(path)) return inspect_safe(path, *layout, "", scratch);
    return inspect_product(path);
  };
  facts.ref = inspect(ref_path);
  facts.sec = inspect(sec_path);
  facts.kind = resolve_input_kind(options.grid.input_kind, facts.ref, facts.sec);
  for (const SarProduct* p : {&facts.ref, &facts.sec}) {
    if (p->complex) {
      throw InvalidArgument(
          fmt::format("{}: complex samples (single-look complex, SLC); expected amplitude or "
                      "backscatter (detected GRD, or the SLC's amplitude)",
                      p->path));
    }
  }
  if (facts.kind == InputKind::kSar && !facts.ref.polarization.empty() && !facts.sec.polarization.empty() &&
      facts.ref.polarization != facts.sec.polarization) {
    throw InvalidArgument(fmt::format("{} is {} and {} is {}: expected the same polarization in both images",
                                      ref_path, facts.ref.polarization, sec_path, facts.sec.polarization));
  }
  facts.map_grid = facts.ref.gcps_only || facts.sec.gcps_only || !options.grid.crs.empty() ||
                   options.grid.fixed.has_value();
  if (facts.kind == InputKind::kSar && !facts.map_grid) {
    // SAR in radar geometry without GCPs cannot be placed; a SAR product with a geotransform (terrain
    // corrected) is matched on REF's grid like an optical pair.
    for (const SarProduct* p : {&facts.ref, &facts.sec}) {
      if (!io::describe(p->raster_path).georeferenced) {
        throw InvalidArgument(
            fmt::format("{}: no georeferencing: expected ground control points (GCPs) or a "
                        "geotransform with a CRS to place the SAR image on a map grid",
                        p->path));
      }
    }
  }
  return facts;
}

io::MapGridOptions map_grid_options(const CorrelateOptions& options) {
  io::MapGridOptions grid;
  grid.crs = options.grid.crs;
  grid.resolution_m = options.grid.resolution_m;
  grid.transform = options.grid.transform;
  return grid;
}

}  // namespace

PreparedPair prepare_pair(const std::string& ref_path, const std::string& sec_path,
                          const CorrelateOptions& options, Summary* summary) {
  PreparedPair prepared;
  prepared.scratch_ =
      fmt::format("/vsimem/deforma_pair_{}_{}", static_cast<long long>(::getpid()), scratch_counter++);
  VSIMkdir(prepared.scratch_.c_str(), 0755);
  const PairFacts facts = pair_facts(ref_path, sec_path, options, prepared.scratch_);
  prepared.kind = facts.kind;
  prepared.ref_path = facts.ref.raster_path;
  prepared.sec_path = facts.sec.raster_path;
  prepared.ref_band = options.ref_band;
  prepared.sec_band = options.sec_band;
  const auto band_transform =
      facts.kind == InputKind::kSar ? io::BandTransform::kDecibel : io::BandTransform::kNone;
  if (facts.map_grid) {
    prepared.map_grid = true;
    prepared.grid = options.grid.fixed ? *options.grid.fixed
                                       : io::common_map_grid({facts.ref.raster_path, facts.sec.raster_path},
                                                             map_grid_options(options));
    prepared.ref_path = prepared.scratch_ + "/ref.vrt";
    prepared.sec_path = prepared.scratch_ + "/sec.vrt";
    io::write_warped_vrt(facts.ref.raster_path, options.ref_band, prepared.grid, options.grid.transform,
                         band_transform, prepared.ref_path);
    io::write_warped_vrt(facts.sec.raster_path, options.sec_band, prepared.grid, options.grid.transform,
                         band_transform, prepared.sec_path);
    prepared.ref_band = prepared.sec_band = 1;
    prepared.gcp_transform = options.grid.transform;
    if (summary) {
      summary->details["grid"] = {{"crs", prepared.grid.crs},
                                  {"resolution_m", prepared.grid.resolution_m},
                                  {"width_px", prepared.grid.width},
                                  {"height_px", prepared.grid.height},
                                  {"gcp_transform", io::to_string(options.grid.transform)}};
    }
  } else if (band_transform == io::BandTransform::kDecibel) {
    // Map-projected SAR: decibels on the images' own grids.
    prepared.ref_path = prepared.scratch_ + "/ref_db.vrt";
    prepared.sec_path = prepared.scratch_ + "/sec_db.vrt";
    io::write_band_vrt(facts.ref.raster_path, options.ref_band, band_transform, prepared.ref_path);
    io::write_band_vrt(facts.sec.raster_path, options.sec_band, band_transform, prepared.sec_path);
    prepared.ref_band = prepared.sec_band = 1;
  }
  prepared.polarization = facts.ref.polarization;
  if (summary) {
    summary->details["input_kind"] = to_string(facts.kind);
    if (!facts.ref.polarization.empty()) summary->details["polarization"] = facts.ref.polarization;
  }
  return prepared;
}

nlohmann::json input_provenance(const PreparedPair& prepared) {
  nlohmann::json j{{"input_kind", to_string(prepared.kind)},
                   {"polarization", prepared.polarization.empty() ? nlohmann::json(nullptr)
                                                                  : nlohmann::json(prepared.polarization)},
                   {"map_grid", nullptr},
                   {"gcp_transform", nullptr}};
  if (prepared.map_grid) {
    const auto& g = prepared.grid;
    j["map_grid"] = {{"crs", g.crs},
                     {"crs_wkt", g.crs_wkt},
                     {"resolution_m", g.resolution_m},
                     {"origin", {g.geotransform.c[0], g.geotransform.c[3]}},
                     {"width_px", g.width},
                     {"height_px", g.height}};
    j["gcp_transform"] = io::to_string(prepared.gcp_transform);
  }
  return j;
}

void add_input_provenance(const PreparedPair& prepared, nlohmann::json& parameters,
                          std::map<std::string, std::string>& metadata) {
  const nlohmann::json input = input_provenance(prepared);
  parameters["input"] = input;
  metadata["DEFORMA_INPUT_KIND"] = input["input_kind"].get<std::string>();
  if (prepared.map_grid) {
    // Without the WKT, which DEFORMA_PARAMETERS and the raster's own CRS already hold.
    nlohmann::json grid = input["map_grid"];
    grid.erase("crs_wkt");
    metadata["DEFORMA_MAP_GRID"] = grid.dump();
    metadata["DEFORMA_GCP_TRANSFORM"] = input["gcp_transform"].get<std::string>();
  }
}

io::RasterInfo matching_grid(const std::string& ref_path, const std::string& sec_path,
                             const CorrelateOptions& options) {
  const std::string scratch =
      fmt::format("/vsimem/deforma_grid_{}_{}", static_cast<long long>(::getpid()), scratch_counter++);
  VSIMkdir(scratch.c_str(), 0755);
  struct Cleanup {
    std::string path;
    ~Cleanup() { VSIRmdirRecursive(path.c_str()); }
  } cleanup{scratch};
  const PairFacts facts = pair_facts(ref_path, sec_path, options, scratch);
  if (!facts.map_grid) return io::describe(facts.ref.raster_path);
  if (options.grid.fixed) return options.grid.fixed->as_info(ref_path + " (series map grid)");
  return io::common_map_grid({facts.ref.raster_path, facts.sec.raster_path}, map_grid_options(options))
      .as_info(ref_path + " (map grid)");
}

std::optional<io::MapGrid> series_map_grid(const std::vector<std::string>& paths,
                                           const GridOptions& options) {
  if (options.fixed) return options.fixed;
  const std::string scratch =
      fmt::format("/vsimem/deforma_series_{}_{}", static_cast<long long>(::getpid()), scratch_counter++);
  VSIMkdir(scratch.c_str(), 0755);
  struct Cleanup {
    std::string path;
    ~Cleanup() { VSIRmdirRecursive(path.c_str()); }
  } cleanup{scratch};
  std::vector<std::string> rasters;
  bool gcps_only = false;
  for (const auto& path : paths) {
    // SAFE products whose tiffs lack GCPs get VRTs with the annotation's in `scratch`; the grid only needs
    // them while it is computed.
    const auto layout = safe_layout(path);
    const SarProduct p = layout ? inspect_safe(path, *layout, "", scratch) : inspect_product(path);
    gcps_only = gcps_only || p.gcps_only;
    rasters.push_back(p.raster_path);
  }
  if (!gcps_only && options.crs.empty()) return std::nullopt;
  io::MapGridOptions grid;
  grid.crs = options.crs;
  grid.resolution_m = options.resolution_m;
  grid.transform = options.transform;
  return io::common_map_grid(rasters, grid);
}

}  // namespace deforma::correlate
