// STAC API item search: the request read from GET parameters or a POST body, CQL2 text parsed into CQL2
// JSON, and the whole search turned into one SQL WHERE clause over the catalogue's tables.
#include <ogr_api.h>
#include <ogr_geometry.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "catalog/internal.hpp"
#include "deforma/core/error.hpp"

namespace deforma::catalog {
namespace {

using json = nlohmann::json;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (!std::isspace(static_cast<unsigned char>(c)) || !cur.empty()) {
      cur += c;
    }
  }
  while (!cur.empty() && std::isspace(static_cast<unsigned char>(cur.back()))) cur.pop_back();
  if (!cur.empty()) out.push_back(cur);
  return out;
}

double parse_number(const std::string& text, const std::string& what) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used != text.size() || !std::isfinite(v)) throw std::invalid_argument(text);
    return v;
  } catch (const std::exception&) {
    throw InvalidArgument(fmt::format("{}: '{}' is not a number", what, text));
  }
}

std::array<double, 4> parse_bbox(const std::vector<double>& v) {
  if (v.size() != 4 && v.size() != 6) {
    throw InvalidArgument(
        fmt::format("bbox: expected 4 numbers (west, south, east, north) or 6, got {}", v.size()));
  }
  const bool three_d = v.size() == 6;
  std::array<double, 4> b{v[0], v[1], v[three_d ? 3 : 2], v[three_d ? 4 : 3]};
  if (b[1] > b[3]) throw InvalidArgument("bbox: south is greater than north");
  if (b[1] < -90 || b[3] > 90 || b[0] < -180 || b[0] > 180 || b[2] < -180 || b[2] > 180) {
    throw InvalidArgument("bbox: expected longitudes within -180..180 and latitudes within -90..90");
  }
  return b;
}

// Seconds of an instant; for an end bound given as a date only, the end of that day.
double instant(const std::string& text, bool end_of_day, const std::string& what) {
  const auto t = parse_rfc3339(text);
  if (!t) throw InvalidArgument(fmt::format("{}: '{}' is not an RFC 3339 date-time", what, text));
  return *t + (end_of_day && text.size() == 10 ? 86399.999 : 0.0);
}

std::vector<std::string> string_list(const json& v, const std::string& what) {
  if (v.is_string()) return split_list(v.get<std::string>());
  if (!v.is_array()) throw InvalidArgument(fmt::format("{}: expected an array of strings", what));
  std::vector<std::string> out;
  for (const auto& x : v) {
    if (!x.is_string()) throw InvalidArgument(fmt::format("{}: expected an array of strings", what));
    out.push_back(x.get<std::string>());
  }
  return out;
}

int parse_limit(double v) {
  if (!std::isfinite(v) || v < 1 || v != std::floor(v)) {
    throw InvalidArgument(fmt::format("limit: expected an integer of at least 1, got {}", v));
  }
  return static_cast<int>(std::min<double>(v, kMaxLimit));
}

std::vector<SortKey> parse_sort_text(const std::string& text) {
  std::vector<SortKey> out;
  for (std::string f : split_list(text)) {
    SortKey k;
    if (f[0] == '+' || f[0] == ' ') {  // '+' may arrive decoded as a space
      f = f.substr(1);
    } else if (f[0] == '-') {
      k.ascending = false;
      f = f.substr(1);
    }
    if (f.empty()) throw InvalidArgument("sortby: empty field name");
    k.field = f;
    out.push_back(k);
  }
  return out;
}

void finish_request(SearchRequest& r) {
  if (r.bbox && !r.intersects.is_null()) {
    throw InvalidArgument("bbox and intersects: give one of them, not both");
  }
  if (!r.intersects.is_null()) geojson_to_wkb(r.intersects, "intersects");
  if (!r.filter.is_null()) {
    SqlQuery probe;  // checks operators and operands now, so that a bad filter is a 400 before any query
    build_search_conditions(r, Viewer{"", true}, probe);
  }
  if (r.aoi_cloud_cover_max && !r.bbox && r.intersects.is_null()) {
    throw InvalidArgument("aoi_cloud_cover: needs an area of interest (bbox or intersects)");
  }
}

// ---------------------------------------------------------------- CQL2 text
class Cql2Parser {
 public:
  explicit Cql2Parser(std::string text) : text_(std::move(text)) {}

  json parse() {
    json e = parse_or();
    skip_space();
    if (pos_ != text_.size()) error("unexpected text");
    return e;
  }

 private:
  std::string text_;
  std::size_t pos_ = 0;

  [[noreturn]] void error(const std::string& what) const {
    throw InvalidArgument(fmt::format("filter: {} at position {} of '{}'", what, pos_ + 1, text_));
  }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool peek_char(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  void expect(char c) {
    if (!peek_char(c)) error(fmt::format("expected '{}'", c));
    ++pos_;
  }
  // A keyword (case-insensitive) as a whole word.
  bool keyword(const std::string& kw) {
    skip_space();
    if (pos_ + kw.size() > text_.size()) return false;
    if (upper(text_.substr(pos_, kw.size())) != kw) return false;
    const std::size_t end = pos_ + kw.size();
    if (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '_' ||
                               text_[end] == ':' || text_[end] == '.'))
      return false;
    pos_ = end;
    return true;
  }

  json parse_or() {
    json left = parse_and();
    json args = json::array({left});
    while (keyword("OR")) args.push_back(parse_and());
    return args.size() == 1 ? left : json{{"op", "or"}, {"args", args}};
  }
  json parse_and() {
    json left = parse_not();
    json args = json::array({left});
    while (keyword("AND")) args.push_back(parse_not());
    return args.size() == 1 ? left : json{{"op", "and"}, {"args", args}};
  }
  json parse_not() {
    if (keyword("NOT")) return {{"op", "not"}, {"args", {parse_not()}}};
    return parse_predicate();
  }

  json parse_predicate() {
    if (peek_char('(')) {
      ++pos_;
      json e = parse_or();
      expect(')');
      return e;
    }
    for (const char* f : {"S_INTERSECTS", "S_WITHIN", "S_CONTAINS", "S_DISJOINT", "T_INTERSECTS", "T_BEFORE",
                          "T_AFTER", "T_DURING"}) {
      if (keyword(f)) {
        expect('(');
        json a = parse_operand();
        expect(',');
        json b = parse_operand();
        expect(')');
        return {{"op", lower(f)}, {"args", {a, b}}};
      }
    }
    json left = parse_operand();
    bool negate = false;
    const std::size_t before_not = pos_;
    if (keyword("NOT")) negate = true;
    json e;
    if (keyword("BETWEEN")) {
      json lo = parse_operand();
      if (!keyword("AND")) error("expected AND in BETWEEN");
      json hi = parse_operand();
      e = {{"op", "between"}, {"args", {left, lo, hi}}};
    } else if (keyword("IN")) {
      expect('(');
      json list = json::array({parse_operand()});
      while (peek_char(',')) {
        ++pos_;
        list.push_back(parse_operand());
      }
      expect(')');
      e = {{"op", "in"}, {"args", {left, list}}};
    } else if (keyword("LIKE")) {
      e = {{"op", "like"}, {"args", {left, parse_operand()}}};
    } else if (!negate && keyword("IS")) {
      const bool is_not = keyword("NOT");
      if (!keyword("NULL")) error("expected NULL after IS");
      e = {{"op", "isNull"}, {"args", {left}}};
      if (is_not) e = {{"op", "not"}, {"args", {e}}};
      return e;
    } else {
      if (negate) {
        pos_ = before_not;
        error("expected BETWEEN, IN or LIKE after NOT");
      }
      skip_space();
      std::string op;
      for (const char* o : {"<>", "<=", ">=", "=", "<", ">"}) {
        if (text_.compare(pos_, std::strlen(o), o) == 0) {
          op = o;
          break;
        }
      }
      if (op.empty()) error("expected a comparison operator (=, <>, <, <=, >, >=)");
      pos_ += op.size();
      return {{"op", op}, {"args", {left, parse_operand()}}};
    }
    return negate ? json{{"op", "not"}, {"args", {e}}} : e;
  }

  std::string parse_string() {
    expect('\'');
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) error("unterminated string");
      if (text_[pos_] == '\'') {
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '\'') {
          out += '\'';
          pos_ += 2;
          continue;
        }
        ++pos_;
        return out;
      }
      out += text_[pos_++];
    }
  }

  json parse_geometry_wkt(const std::string& kind) {
    // From the keyword to its matching parenthesis, read by OGR.
    const std::size_t start = pos_ - kind.size();
    skip_space();
    if (pos_ >= text_.size() || text_[pos_] != '(') error("expected '(' after " + kind);
    int depth = 0;
    std::size_t i = pos_;
    for (; i < text_.size(); ++i) {
      if (text_[i] == '(') ++depth;
      if (text_[i] == ')' && --depth == 0) break;
    }
    if (depth != 0) error("unbalanced parentheses in " + kind);
    const std::string wkt = text_.substr(start, i + 1 - start);
    pos_ = i + 1;
    OGRGeometry* g = nullptr;
    if (OGRGeometryFactory::createFromWkt(wkt.c_str(), nullptr, &g) != OGRERR_NONE || !g) {
      error(fmt::format("'{}' is not valid WKT", wkt));
    }
    std::unique_ptr<OGRGeometry> owned(g);
    char* text = owned->exportToJson();
    json out = json::parse(text);
    CPLFree(text);
    return out;
  }

  json parse_operand() {
    skip_space();
    if (pos_ >= text_.size()) error("expected a value or a property");
    const char c = text_[pos_];
    if (c == '\'') return parse_string();
    if (c == '(') {  // a list inside IN handled by the caller; here a parenthesised operand
      ++pos_;
      json v = parse_operand();
      expect(')');
      return v;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.') {
      std::size_t used = 0;
      double v = 0;
      try {
        v = std::stod(text_.substr(pos_), &used);
      } catch (const std::exception&) {
        error("expected a number");
      }
      pos_ += used;
      if (v == std::floor(v) && std::fabs(v) < 9e15) return static_cast<std::int64_t>(v);
      return v;
    }
    if (c == '"') {
      const std::size_t end = text_.find('"', pos_ + 1);
      if (end == std::string::npos) error("unterminated quoted property name");
      json p{{"property", text_.substr(pos_ + 1, end - pos_ - 1)}};
      pos_ = end + 1;
      return p;
    }
    if (keyword("TRUE")) return true;
    if (keyword("FALSE")) return false;
    if (keyword("NULL")) return nullptr;
    if (keyword("TIMESTAMP")) {
      expect('(');
      json v{{"timestamp", parse_string()}};
      expect(')');
      return v;
    }
    if (keyword("DATE")) {
      expect('(');
      json v{{"date", parse_string()}};
      expect(')');
      return v;
    }
    if (keyword("INTERVAL")) {
      expect('(');
      json a = peek_char('\'') ? json(parse_string()) : parse_operand();
      expect(',');
      json b = peek_char('\'') ? json(parse_string()) : parse_operand();
      expect(')');
      return {{"interval", {a, b}}};
    }
    if (keyword("BBOX")) {
      expect('(');
      json coords = json::array();
      coords.push_back(parse_operand());
      while (peek_char(',')) {
        ++pos_;
        coords.push_back(parse_operand());
      }
      expect(')');
      return {{"bbox", coords}};
    }
    for (const char* g : {"POINT", "MULTIPOINT", "LINESTRING", "MULTILINESTRING", "POLYGON", "MULTIPOLYGON",
                          "GEOMETRYCOLLECTION"}) {
      if (keyword(g)) return parse_geometry_wkt(g);
    }
    // A property name.
    std::size_t end = pos_;
    while (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '_' ||
                                  text_[end] == ':' || text_[end] == '.' || text_[end] == '-')) {
      ++end;
    }
    if (end == pos_) error("expected a value or a property");
    json p{{"property", text_.substr(pos_, end - pos_)}};
    pos_ = end;
    return p;
  }
};

// ---------------------------------------------------------------- SQL building
bool valid_property_name(const std::string& name) {
  if (name.empty() || name.size() > 200) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == ':' || c == '.' || c == '-';
  });
}

std::string strip_properties_prefix(const std::string& name) {
  return name.rfind("properties.", 0) == 0 ? name.substr(11) : name;
}

bool is_time_property(const std::string& name) {
  return name == "datetime" || name == "start_datetime" || name == "end_datetime";
}

std::string property_sql(const std::string& raw, SqlQuery& q) {
  const std::string name = strip_properties_prefix(raw);
  if (!valid_property_name(name))
    throw InvalidArgument(fmt::format("filter: '{}' is not a property name", raw));
  if (name == "id") return "i.id";
  if (name == "collection") return "i.collection";
  if (name == "datetime") return "i.datetime";
  if (name == "start_datetime") return "i.start";
  if (name == "end_datetime") return "i.end";
  if (name == "eo:cloud_cover") return "i.cloud";
  if (name == "geometry") return "i.geom";
  q.values.emplace_back(fmt::format("$.properties.\"{}\"", name));
  return "json_extract(i.doc, ?)";
}

// The R*Tree condition of an area's envelope (a box, or two across the antimeridian) and, unless `exact` is
// false (the caller then tests the geometry itself), the exact intersection.
void add_area(const Blob& wkb, const std::optional<std::array<double, 4>>& box, SqlQuery& q,
              bool exact = true) {
  std::string rtree;
  if (box && (*box)[0] > (*box)[2]) {
    rtree = "(maxx >= ? OR minx <= ?) AND miny <= ? AND maxy >= ?";
    q.values.insert(q.values.end(), {(*box)[0], (*box)[2], (*box)[3], (*box)[1]});
  } else {
    OGRGeometry* g = nullptr;
    OGRGeometryFactory::createFromWkb(wkb.bytes.data(), nullptr, &g, static_cast<int>(wkb.bytes.size()));
    std::unique_ptr<OGRGeometry> owned(g);
    OGREnvelope e;
    if (owned) owned->getEnvelope(&e);
    rtree = "minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?";
    q.values.insert(q.values.end(), {e.MaxX, e.MinX, e.MaxY, e.MinY});
  }
  if (!exact) {
    q.sql += "i.rid IN (SELECT rid FROM catalog_items_rtree WHERE " + rtree + ")";
    return;
  }
  q.sql += "(i.rid IN (SELECT rid FROM catalog_items_rtree WHERE " + rtree +
           ") AND catalog_intersects(i.geom, ?))";
  q.values.emplace_back(wkb);
}

json box_geometry(const std::array<double, 4>& b) {
  auto ring = [](double w, double s, double e, double n) {
    return json::array({json::array({json::array({w, s}), json::array({e, s}), json::array({e, n}),
                                     json::array({w, n}), json::array({w, s})})});
  };
  if (b[0] <= b[2]) return {{"type", "Polygon"}, {"coordinates", ring(b[0], b[1], b[2], b[3])}};
  return {{"type", "MultiPolygon"},
          {"coordinates", {ring(b[0], b[1], 180, b[3]), ring(-180, b[1], b[2], b[3])}}};
}

// Seconds of a temporal literal; `end` selects the end of a date-only value.
std::optional<double> time_literal(const json& v, bool end) {
  if (v.is_object() && v.contains("timestamp") && v["timestamp"].is_string())
    return instant(v["timestamp"].get<std::string>(), false, "filter");
  if (v.is_object() && v.contains("date") && v["date"].is_string())
    return instant(v["date"].get<std::string>(), end, "filter");
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == ".." || s.empty()) return std::nullopt;
    return instant(s, end, "filter");
  }
  throw InvalidArgument(fmt::format("filter: {} is not a timestamp, date or interval", v.dump()));
}

std::string filter_sql(const json& e, SqlQuery& q);

// An operand of a comparison; `time` makes string and timestamp literals seconds (compared with datetime).
std::string operand_sql(const json& v, SqlQuery& q, bool time, bool end = false) {
  if (v.is_object() && v.contains("property")) {
    if (!v["property"].is_string()) throw InvalidArgument("filter: a property name must be a string");
    return property_sql(v["property"].get<std::string>(), q);
  }
  if (time && (v.is_string() || (v.is_object() && (v.contains("timestamp") || v.contains("date"))))) {
    const auto t = time_literal(v, end);
    if (!t) throw InvalidArgument("filter: an open time '..' cannot be compared");
    q.values.emplace_back(*t);
    return "?";
  }
  if (v.is_object() && (v.contains("timestamp") || v.contains("date"))) {
    q.values.emplace_back((v.contains("timestamp") ? v["timestamp"] : v["date"]).get<std::string>());
    return "?";
  }
  if (v.is_boolean()) {
    q.values.emplace_back(std::int64_t{v.get<bool>() ? 1 : 0});
    return "?";
  }
  if (v.is_number_integer()) {
    q.values.emplace_back(v.get<std::int64_t>());
    return "?";
  }
  if (v.is_number()) {
    q.values.emplace_back(v.get<double>());
    return "?";
  }
  if (v.is_string()) {
    q.values.emplace_back(v.get<std::string>());
    return "?";
  }
  if (v.is_null()) return "NULL";
  if (v.is_object() && v.contains("op")) return filter_sql(v, q);
  throw InvalidArgument(fmt::format("filter: {} is not a value this catalogue compares", v.dump()));
}

bool names_time(const json& v) {
  return v.is_object() && v.contains("property") && v["property"].is_string() &&
         is_time_property(strip_properties_prefix(v["property"].get<std::string>()));
}

const json& args_of(const json& e, std::size_t n, const std::string& op) {
  if (!e.contains("args") || !e["args"].is_array() || (n > 0 && e["args"].size() != n)) {
    throw InvalidArgument(fmt::format("filter: '{}' expects {} arguments", op, n));
  }
  return e["args"];
}

std::string filter_sql(const json& e, SqlQuery& q) {
  if (e.is_boolean()) return e.get<bool>() ? "1" : "0";
  if (!e.is_object() || !e.contains("op") || !e["op"].is_string()) {
    throw InvalidArgument(fmt::format(
        "filter: expected an operation {{\"op\": ..., \"args\": [...]}}, got {}", e.dump().substr(0, 200)));
  }
  const std::string op = lower(e["op"].get<std::string>());
  if (op == "and" || op == "or") {
    const json& args = args_of(e, 0, op);
    if (args.empty()) throw InvalidArgument(fmt::format("filter: '{}' needs arguments", op));
    std::string out = "(";
    for (std::size_t k = 0; k < args.size(); ++k) {
      if (k) out += op == "and" ? " AND " : " OR ";
      out += filter_sql(args[k], q);
    }
    return out + ")";
  }
  if (op == "not") return "(NOT " + filter_sql(args_of(e, 1, op)[0], q) + ")";
  static const std::set<std::string> kCompare{"=", "<>", "!=", "<", "<=", ">", ">="};
  if (kCompare.count(op)) {
    const json& a = args_of(e, 2, op);
    const bool time = names_time(a[0]) || names_time(a[1]);
    const std::string l = operand_sql(a[0], q, time);
    const std::string r = operand_sql(a[1], q, time);
    return "(" + l + " " + (op == "!=" ? "<>" : op) + " " + r + ")";
  }
  if (op == "isnull") return "(" + operand_sql(args_of(e, 1, op)[0], q, false) + " IS NULL)";
  if (op == "like") {
    const json& a = args_of(e, 2, op);
    const std::string l = operand_sql(a[0], q, false);
    return "(" + l + " LIKE " + operand_sql(a[1], q, false) + ")";
  }
  if (op == "between") {
    const json& a = args_of(e, 3, op);
    const bool time = names_time(a[0]);
    const std::string v = operand_sql(a[0], q, time);
    const std::string lo = operand_sql(a[1], q, time);
    const std::string hi = operand_sql(a[2], q, time, true);
    return "(" + v + " BETWEEN " + lo + " AND " + hi + ")";
  }
  if (op == "in") {
    const json& a = args_of(e, 2, op);
    if (!a[1].is_array() || a[1].empty()) throw InvalidArgument("filter: 'in' expects a non-empty list");
    const bool time = names_time(a[0]);
    std::string out = "(" + operand_sql(a[0], q, time) + " IN (";
    for (std::size_t k = 0; k < a[1].size(); ++k) out += (k ? ", " : "") + operand_sql(a[1][k], q, time);
    return out + "))";
  }
  if (op == "s_intersects") {
    const json& a = args_of(e, 2, op);
    const json& geometry = a[0].is_object() && a[0].contains("property") ? a[1] : a[0];
    json g = geometry;
    std::optional<std::array<double, 4>> box;
    if (g.is_object() && g.contains("bbox") && !g.contains("type")) {
      std::vector<double> v;
      for (const auto& x : g["bbox"]) {
        if (!x.is_number()) throw InvalidArgument("filter: BBOX expects numbers");
        v.push_back(x.get<double>());
      }
      box = parse_bbox(v);
      g = box_geometry(*box);
    }
    SqlQuery part;
    add_area(geojson_to_wkb(g, "filter: s_intersects"), box, part);
    q.values.insert(q.values.end(), part.values.begin(), part.values.end());
    return part.sql;
  }
  if (op == "t_intersects" || op == "anyinteracts") {
    const json& a = args_of(e, 2, op);
    const json& t = a[0].is_object() && a[0].contains("property") ? a[1] : a[0];
    std::optional<double> from, to;
    if (t.is_object() && t.contains("interval") && t["interval"].is_array() && t["interval"].size() == 2) {
      from = time_literal(t["interval"][0], false);
      to = time_literal(t["interval"][1], true);
    } else {
      from = time_literal(t, false);
      to = time_literal(t, true);
    }
    std::string out = "(i.start IS NOT NULL";
    if (from) {
      out += " AND i.end >= ?";
      q.values.emplace_back(*from);
    }
    if (to) {
      out += " AND i.start <= ?";
      q.values.emplace_back(*to);
    }
    return out + ")";
  }
  throw InvalidArgument(fmt::format(
      "filter: operator '{}' is not supported (supported: and, or, not, =, <>, <, <=, >, >=, isNull, like, "
      "between, in, s_intersects, t_intersects)",
      op));
}

// Free text as an FTS5 query: comma-separated alternatives, words of one alternative all required, quoted
// phrases kept, AND/OR words as operators. Every term is quoted, so no text breaks the FTS5 syntax.
std::string fts_query(const std::string& q) {
  std::vector<std::string> alternatives;
  std::string cur_alt;
  std::vector<std::string> tokens;
  std::string token;
  bool in_quote = false;
  auto flush_token = [&] {
    if (!token.empty()) tokens.push_back(token);
    token.clear();
  };
  auto flush_alt = [&] {
    flush_token();
    std::string a;
    bool pending_or = false;
    for (const auto& t : tokens) {
      if (t == "OR" || t == "AND") {
        pending_or = t == "OR";
        continue;
      }
      std::string quoted = "\"";
      for (char c : t) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
      quoted += "\"";
      if (!a.empty()) a += pending_or ? " OR " : " AND ";
      a += quoted;
      pending_or = false;
    }
    if (!a.empty()) alternatives.push_back("(" + a + ")");
    tokens.clear();
  };
  for (char c : q) {
    if (c == '"') {
      if (in_quote) {
        tokens.push_back(token);
        token.clear();
      } else {
        flush_token();
      }
      in_quote = !in_quote;
    } else if (!in_quote && c == ',') {
      flush_alt();
    } else if (!in_quote && std::isspace(static_cast<unsigned char>(c))) {
      flush_token();
    } else {
      token += c;
    }
  }
  flush_alt();
  std::string out;
  for (const auto& a : alternatives) out += (out.empty() ? "" : " OR ") + a;
  return out;
}

}  // namespace

std::pair<std::optional<double>, std::optional<double>> parse_datetime_interval(const std::string& text) {
  const auto slash = text.find('/');
  if (slash == std::string::npos) {
    if (text.empty() || text == "..") throw InvalidArgument("datetime: expected an instant or an interval");
    return {instant(text, false, "datetime"), instant(text, true, "datetime")};
  }
  const std::string a = text.substr(0, slash), b = text.substr(slash + 1);
  if (b.find('/') != std::string::npos)
    throw InvalidArgument(fmt::format("datetime: '{}' has two '/'", text));
  std::optional<double> from, to;
  if (!a.empty() && a != "..") from = instant(a, false, "datetime");
  if (!b.empty() && b != "..") to = instant(b, true, "datetime");
  if (!from && !to) throw InvalidArgument(fmt::format("datetime: '{}' is open at both ends", text));
  if (from && to && *from > *to)
    throw InvalidArgument(fmt::format("datetime: '{}' ends before it starts", text));
  return {from, to};
}

json cql2_text_to_json(const std::string& text) {
  return Cql2Parser(text).parse();
}

SearchRequest parse_search_json(const json& body) {
  if (!body.is_object()) throw InvalidArgument("search: expected a JSON object");
  SearchRequest r;
  std::string filter_lang;
  for (const auto& [key, v] : body.items()) {
    if (key == "bbox") {
      if (!v.is_array()) throw InvalidArgument("bbox: expected an array of numbers");
      std::vector<double> nums;
      for (const auto& x : v) {
        if (!x.is_number()) throw InvalidArgument("bbox: expected an array of numbers");
        nums.push_back(x.get<double>());
      }
      r.bbox = parse_bbox(nums);
    } else if (key == "intersects") {
      if (!v.is_null()) r.intersects = v;
    } else if (key == "datetime") {
      if (v.is_null()) continue;
      if (!v.is_string()) throw InvalidArgument("datetime: expected a string");
      std::tie(r.start_s, r.end_s) = parse_datetime_interval(v.get<std::string>());
    } else if (key == "collections") {
      r.collections = string_list(v, "collections");
    } else if (key == "ids") {
      r.ids = string_list(v, "ids");
    } else if (key == "limit") {
      if (!v.is_number()) throw InvalidArgument("limit: expected a number");
      r.limit = parse_limit(v.get<double>());
    } else if (key == "sortby") {
      if (v.is_string()) {
        r.sortby = parse_sort_text(v.get<std::string>());
      } else if (v.is_array()) {
        for (const auto& s : v) {
          if (!s.is_object() || !s.contains("field") || !s["field"].is_string())
            throw InvalidArgument("sortby: expected [{\"field\": ..., \"direction\": \"asc\"|\"desc\"}]");
          const std::string dir = lower(s.value("direction", "asc"));
          if (dir != "asc" && dir != "desc")
            throw InvalidArgument("sortby: direction must be 'asc' or 'desc'");
          r.sortby.push_back({s["field"].get<std::string>(), dir == "asc"});
        }
      } else {
        throw InvalidArgument("sortby: expected an array");
      }
    } else if (key == "fields") {
      if (!v.is_object()) throw InvalidArgument("fields: expected {\"include\": [...], \"exclude\": [...]}");
      if (v.contains("include")) r.fields_include = string_list(v["include"], "fields.include");
      if (v.contains("exclude")) r.fields_exclude = string_list(v["exclude"], "fields.exclude");
    } else if (key == "filter") {
      r.filter = v;
    } else if (key == "filter-lang") {
      if (!v.is_string()) throw InvalidArgument("filter-lang: expected 'cql2-json' or 'cql2-text'");
      filter_lang = v.get<std::string>();
    } else if (key == "filter-crs") {
      if (!v.is_string() || (v != "http://www.opengis.net/def/crs/OGC/1.3/CRS84"))
        throw InvalidArgument("filter-crs: only http://www.opengis.net/def/crs/OGC/1.3/CRS84 is supported");
    } else if (key == "q") {
      if (v.is_string()) {
        r.q = v.get<std::string>();
      } else if (v.is_array()) {
        for (const auto& s : string_list(v, "q")) r.q += (r.q.empty() ? "" : ",") + s;
      } else {
        throw InvalidArgument("q: expected a string or an array of strings");
      }
    } else if (key == "aoi_cloud_cover") {
      if (!v.is_number()) throw InvalidArgument("aoi_cloud_cover: expected a number (percent)");
      r.aoi_cloud_cover_max = v.get<double>();
    } else if (key == "token") {
      if (!v.is_string()) throw InvalidArgument("token: expected a string");
      const std::string t = v.get<std::string>();
      r.offset = static_cast<std::int64_t>(parse_number(t.rfind("next:", 0) == 0 ? t.substr(5) : t, "token"));
      if (r.offset < 0) throw InvalidArgument("token: not a token of this service");
    }
  }
  if (!filter_lang.empty() && filter_lang != "cql2-json" && filter_lang != "cql2-text") {
    throw InvalidArgument(fmt::format("filter-lang: '{}' is not 'cql2-json' or 'cql2-text'", filter_lang));
  }
  if (r.filter.is_string()) {
    if (filter_lang == "cql2-json")
      throw InvalidArgument("filter: filter-lang is cql2-json but the filter is text");
    r.filter = cql2_text_to_json(r.filter.get<std::string>());
  }
  finish_request(r);
  return r;
}

json search_query_body(const std::vector<std::pair<std::string, std::string>>& params) {
  json body = json::object();
  std::string filter_lang = "cql2-text";
  for (const auto& [key, v] : params) {
    if (key == "bbox") {
      json nums = json::array();
      for (const auto& s : split_list(v)) nums.push_back(parse_number(s, "bbox"));
      body["bbox"] = nums;
    } else if (key == "intersects") {
      json g = json::parse(v, nullptr, false);
      if (g.is_discarded()) throw InvalidArgument("intersects: expected a GeoJSON geometry (JSON)");
      body["intersects"] = g;
    } else if (key == "datetime" || key == "q" || key == "token") {
      body[key] = v;
    } else if (key == "collections" || key == "ids") {
      body[key] = split_list(v);
    } else if (key == "limit") {
      body["limit"] = parse_number(v, "limit");
    } else if (key == "sortby") {
      json s = json::array();
      for (const auto& k : parse_sort_text(v))
        s.push_back({{"field", k.field}, {"direction", k.ascending ? "asc" : "desc"}});
      body["sortby"] = s;
    } else if (key == "fields") {
      json inc = json::array(), exc = json::array();
      for (std::string f : split_list(v)) {
        if (f[0] == '-') {
          exc.push_back(f.substr(1));
        } else {
          inc.push_back(f[0] == '+' ? f.substr(1) : f);
        }
      }
      body["fields"] = {{"include", inc}, {"exclude", exc}};
    } else if (key == "filter-lang") {
      filter_lang = v;
      if (v != "cql2-text" && v != "cql2-json")
        throw InvalidArgument(fmt::format("filter-lang: '{}' is not 'cql2-json' or 'cql2-text'", v));
    } else if (key == "filter") {
      body["filter"] = v;
    } else if (key == "filter-crs") {
      body["filter-crs"] = v;
    } else if (key == "aoi_cloud_cover") {
      body["aoi_cloud_cover"] = parse_number(v, "aoi_cloud_cover");
    }
  }
  if (body.contains("filter") && filter_lang == "cql2-json") {
    json f = json::parse(body["filter"].get<std::string>(), nullptr, false);
    if (f.is_discarded())
      throw InvalidArgument("filter: filter-lang is cql2-json but the filter is not JSON");
    body["filter"] = f;
  }
  return body;
}

SearchRequest parse_search_query(const std::vector<std::pair<std::string, std::string>>& params) {
  return parse_search_json(search_query_body(params));
}

void build_search_conditions(const SearchRequest& r, const Viewer& viewer, SqlQuery& q) {
  std::vector<std::string> parts;
  auto add = [&](const std::string& sql) { parts.push_back(sql); };
  if (!viewer.admin) {
    add("(i.public = 1 OR (i.owner <> '' AND i.owner = ?))");
    q.values.emplace_back(viewer.user);
  }
  json aoi;
  Blob area;  // the exact footprint test, after the cheap conditions (see below)
  if (r.bbox) {
    aoi = box_geometry(*r.bbox);
    SqlQuery part;
    area = geojson_to_wkb(aoi, "bbox");
    add_area(area, r.bbox, part, false);
    add(part.sql);
    q.values.insert(q.values.end(), part.values.begin(), part.values.end());
  } else if (!r.intersects.is_null()) {
    aoi = r.intersects;
    SqlQuery part;
    area = geojson_to_wkb(aoi, "intersects");
    add_area(area, std::nullopt, part, false);
    add(part.sql);
    q.values.insert(q.values.end(), part.values.begin(), part.values.end());
  }
  if (r.start_s) {
    add("i.end >= ?");
    q.values.emplace_back(*r.start_s);
  }
  if (r.end_s) {
    add("i.start <= ?");
    q.values.emplace_back(*r.end_s);
  }
  auto in_list = [&](const std::string& column, const std::vector<std::string>& values) {
    std::string sql = column + " IN (";
    for (std::size_t k = 0; k < values.size(); ++k) {
      sql += k ? ", ?" : "?";
      q.values.emplace_back(values[k]);
    }
    add(sql + ")");
  };
  if (!r.collections.empty()) in_list("i.collection", r.collections);
  if (!r.ids.empty()) in_list("i.id", r.ids);
  if (!r.q.empty()) {
    const std::string match = fts_query(r.q);
    if (!match.empty()) {
      add("i.rid IN (SELECT rowid FROM catalog_items_fts WHERE catalog_items_fts MATCH ?)");
      q.values.emplace_back(match);
    }
  }
  if (!r.filter.is_null()) {
    SqlQuery part;
    const std::string sql = filter_sql(r.filter, part);
    add(sql);
    q.values.insert(q.values.end(), part.values.begin(), part.values.end());
  }
  // The exact intersection (GEOS on each R*Tree candidate) after the datetime, collection, text and filter
  // conditions: SQLite tests the terms in this order, so most candidates are dropped before a geometry is
  // decoded.
  if (!area.bytes.empty()) {
    add("catalog_intersects(i.geom, ?)");
    q.values.emplace_back(area);
  }
  if (r.aoi_cloud_cover_max && !aoi.is_null()) {
    add("catalog_aoi_cloud(i.doc, ?) <= ?");
    q.values.emplace_back(aoi.dump());
    q.values.emplace_back(*r.aoi_cloud_cover_max);
  }
  for (std::size_t k = 0; k < parts.size(); ++k) q.sql += (k ? " AND " : "") + parts[k];
}

std::string sort_expression(const std::string& field, SqlQuery& q) {
  const std::string name = strip_properties_prefix(field);
  if (!valid_property_name(name))
    throw InvalidArgument(fmt::format("sortby: '{}' is not a property name", field));
  if (name == "geometry") throw InvalidArgument("sortby: items cannot be sorted by geometry");
  // Sort values are literal in the ORDER BY (no placeholders after the WHERE's), quoted safely: the name
  // was checked to hold only letters, digits and _ : . -
  if (name == "id" || name == "collection" || name == "datetime" || name == "start_datetime" ||
      name == "end_datetime" || name == "eo:cloud_cover")
    return property_sql(name, q);
  return fmt::format("json_extract(i.doc, '$.properties.\"{}\"')", name);
}

}  // namespace deforma::catalog
