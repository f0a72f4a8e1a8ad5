#include "deforma/timeseries/pairs.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/io/cloud_mask.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/render/image.hpp"
#include "deforma/render/plot.hpp"
#include "timeseries/csv.hpp"

namespace deforma::timeseries {

PairDirection parse_pair_direction(const std::string& text, const std::string& parameter) {
  if (text == "forward") return PairDirection::kForward;
  if (text == "backward") return PairDirection::kBackward;
  if (text == "both") return PairDirection::kBoth;
  throw InvalidArgument(fmt::format("--{} '{}': expected forward, backward or both", parameter, text));
}

std::vector<std::string> drop_cloudy_images(ImageSet& images, const CloudSelection& selection) {
  if (!(selection.max_cloud_percent >= 0.0 && selection.max_cloud_percent <= 100.0)) {
    throw InvalidArgument(
        fmt::format("--max-cloud {}: expected a percentage from 0 to 100", selection.max_cloud_percent));
  }
  // Every mask is found before any is read, so that a set without masks fails at once.
  std::vector<io::CloudMask> masks;
  for (const auto& image : images.images) {
    auto mask = io::find_cloud_mask(image.path);
    if (!mask) {
      throw InvalidArgument(fmt::format("--max-cloud: {} has no cloud mask (looked for {})", image.path,
                                        io::cloud_mask_rule()));
    }
    masks.push_back(*mask);
  }
  std::vector<std::string> dropped;
  std::vector<Image> kept;
  const std::string where = selection.aoi.empty() ? "the scene" : "the aoi";
  for (std::size_t k = 0; k < images.images.size(); ++k) {
    const auto cover = io::cloud_cover_percent(masks[k], selection.aoi);
    if (!cover) {
      dropped.push_back(fmt::format("{} ({}): left out, its cloud mask {} has no valid pixel in the aoi",
                                    images.images[k].path, images.images[k].date.iso(), masks[k].path));
    } else if (*cover > selection.max_cloud_percent) {
      dropped.push_back(fmt::format("{} ({}): left out, {:.1f} % cloud on {} > --max-cloud {:g} % ({})",
                                    images.images[k].path, images.images[k].date.iso(), *cover, where,
                                    selection.max_cloud_percent, masks[k].path));
    } else {
      kept.push_back(images.images[k]);
    }
  }
  images.images = std::move(kept);
  images.skipped.insert(images.skipped.end(), dropped.begin(), dropped.end());
  return dropped;
}

std::string to_string(PairDirection direction) {
  switch (direction) {
    case PairDirection::kForward:
      return "forward";
    case PairDirection::kBackward:
      return "backward";
    case PairDirection::kBoth:
      return "both";
  }
  return "forward";
}

void PairNetworkOptions::validate() const {
  if (min_step < 1)
    throw InvalidArgument(fmt::format("--min-step {}: expected at least 1 acquisition", min_step));
  if (max_step < 0)
    throw InvalidArgument(fmt::format("--max-step {}: expected 0 (unlimited) or more", max_step));
  if (max_step != 0 && max_step < min_step) {
    throw InvalidArgument(fmt::format("--max-step {} is below --min-step {}", max_step, min_step));
  }
  if (!(min_days >= 0.0) || !std::isfinite(min_days)) {
    throw InvalidArgument(fmt::format("--min-days {}: expected a finite value >= 0", min_days));
  }
  if (!(max_days >= 0.0) || !std::isfinite(max_days)) {
    throw InvalidArgument(fmt::format("--max-days {}: expected 0 (unlimited) or more", max_days));
  }
  if (max_days != 0.0 && max_days < min_days) {
    throw InvalidArgument(fmt::format("--max-days {} is below --min-days {}", max_days, min_days));
  }
  if (max_pairs_per_image < 0) {
    throw InvalidArgument(fmt::format("--max-pairs {}: expected 0 (no cap) or more", max_pairs_per_image));
  }
}

std::vector<Pair> build_pair_network(const ImageSet& images, const PairNetworkOptions& options) {
  options.validate();
  if (images.size() < 2) {
    throw InvalidArgument(fmt::format("a pair network needs at least 2 images; got {}{}", images.size(),
                                      images.size() == 1 ? " (" + images.images[0].path + ")" : ""));
  }
  // Group by track when asked: images without track information form one group with everything else
  // that has none.
  std::map<std::string, std::vector<int>> groups;
  for (int i = 0; i < static_cast<int>(images.size()); ++i) {
    groups[options.same_track_only ? images.images[i].track() : std::string()].push_back(i);
  }
  struct Candidate {
    int ref;
    int sec;
    double days;
  };
  std::vector<Candidate> candidates;
  for (const auto& [track, members] : groups) {
    for (std::size_t a = 0; a < members.size(); ++a) {
      for (std::size_t b = a + 1; b < members.size(); ++b) {
        const int step = static_cast<int>(b - a);
        if (step < options.min_step) continue;
        if (options.max_step != 0 && step > options.max_step) break;
        const auto& first = images.images[members[a]];
        const auto& second = images.images[members[b]];
        const double days = first.time_s && second.time_s
                                ? (*second.time_s - *first.time_s) / 86400.0
                                : static_cast<double>(io::days_between(first.date, second.date));
        if (days < options.min_days) continue;
        if (options.max_days != 0.0 && days > options.max_days) continue;
        if (options.direction != PairDirection::kBackward)
          candidates.push_back({members[a], members[b], days});
        if (options.direction != PairDirection::kForward)
          candidates.push_back({members[b], members[a], days});
      }
    }
  }
  if (options.max_pairs_per_image > 0) {
    // Shortest intervals first: they correlate best; ties broken by date for a deterministic result.
    std::stable_sort(candidates.begin(), candidates.end(), [](const Candidate& x, const Candidate& y) {
      if (x.days != y.days) return x.days < y.days;
      return std::min(x.ref, x.sec) < std::min(y.ref, y.sec);
    });
    std::vector<int> count(images.size(), 0);
    std::vector<Candidate> kept;
    for (const auto& c : candidates) {
      if (count[c.ref] >= options.max_pairs_per_image || count[c.sec] >= options.max_pairs_per_image)
        continue;
      ++count[c.ref];
      ++count[c.sec];
      kept.push_back(c);
    }
    candidates = std::move(kept);
  }
  if (candidates.empty()) {
    throw InvalidArgument(
        fmt::format("no pair satisfies the matching rules (min-step {}, max-step {}, min-days {}, max-days "
                    "{}) among {} images "
                    "in {} track(s)",
                    options.min_step, options.max_step, options.min_days, options.max_days, images.size(),
                    groups.size()));
  }
  std::sort(candidates.begin(), candidates.end(), [&](const Candidate& x, const Candidate& y) {
    const auto& ix = images.images;
    if (ix[x.ref].date != ix[y.ref].date) return ix[x.ref].date < ix[y.ref].date;
    if (ix[x.sec].date != ix[y.sec].date) return ix[x.sec].date < ix[y.sec].date;
    return std::tie(x.ref, x.sec) < std::tie(y.ref, y.sec);
  });
  std::vector<Pair> pairs;
  std::set<std::string> ids;
  for (const auto& c : candidates) {
    const auto& ref = images.images[c.ref];
    const auto& sec = images.images[c.sec];
    Pair p;
    p.ref_path = ref.path;
    p.sec_path = sec.path;
    p.ref_date = ref.date;
    p.sec_date = sec.date;
    if (ref.time_s && sec.time_s) {
      p.ref_time_s = ref.time_s;
      p.sec_time_s = sec.time_s;
    }
    p.id = ref.date.compact() + "_" + sec.date.compact();
    if (ids.count(p.id) != 0 && !ref.track().empty()) {
      std::string track = ref.track();
      std::replace(track.begin(), track.end(), '/', '-');
      p.id += "_" + track;
    }
    for (int k = 2; ids.count(p.id) != 0; ++k)
      p.id = fmt::format("{}_{}", ref.date.compact() + "_" + sec.date.compact(), k);
    ids.insert(p.id);
    pairs.push_back(std::move(p));
  }
  return pairs;
}

void write_pair_table(const std::string& csv_path, const std::vector<Pair>& pairs) {
  io::write_atomically(csv_path, [&](const std::string& tmp) {
    std::ofstream out(tmp);
    if (!out) throw IoError(fmt::format("cannot write pair table {}", csv_path));
    // ref_time_s/sec_time_s: acquisition times to the second (seconds since 1970-01-01 UTC) when known,
    // so that a pair hours apart on one day reads back with its span.
    out << "id,ref_path,sec_path,ref_date,sec_date,result_path,weight,days,ref_time_s,sec_time_s\n";
    for (const auto& p : pairs) {
      const bool timed = p.ref_time_s && p.sec_time_s;
      out << detail::csv_field(p.id) << ',' << detail::csv_field(p.ref_path) << ','
          << detail::csv_field(p.sec_path) << ',' << p.ref_date.iso() << ',' << p.sec_date.iso() << ','
          << detail::csv_field(p.result_path) << ',' << fmt::format("{:g}", p.weight) << ',' << p.days() << ','
          << (timed ? fmt::format("{:.6f}", *p.ref_time_s) : "") << ','
          << (timed ? fmt::format("{:.6f}", *p.sec_time_s) : "") << '\n';
    }
    out.close();
    if (!out) throw IoError(fmt::format("error while writing pair table {}", csv_path));
  });
}

std::vector<Pair> read_pair_table(const std::string& csv_path) {
  const auto table = detail::read_csv(csv_path);
  const int id_col = table.require_column("id");
  const int ref_col = table.require_column("ref_path");
  const int sec_col = table.require_column("sec_path");
  const int ref_date_col = table.require_column("ref_date");
  const int sec_date_col = table.require_column("sec_date");
  const int result_col = table.column("result_path");
  const int weight_col = table.column("weight");
  const int ref_time_col = table.column("ref_time_s");
  const int sec_time_col = table.column("sec_time_s");
  std::vector<Pair> pairs;
  for (std::size_t i = 0; i < table.rows.size(); ++i) {
    const auto& row = table.rows[i];
    const int line = table.line_numbers[i];
    Pair p;
    p.id = row[id_col];
    p.ref_path = detail::resolve_relative(csv_path, row[ref_col]);
    p.sec_path = detail::resolve_relative(csv_path, row[sec_col]);
    if (result_col >= 0) p.result_path = detail::resolve_relative(csv_path, row[result_col]);
    auto parse_date = [&](int col, const char* name) {
      try {
        return io::Date::parse(row[col]);
      } catch (const InvalidArgument& e) {
        throw FormatError(fmt::format("{} line {}, column {}: {}", csv_path, line, name, e.what()));
      }
    };
    p.ref_date = parse_date(ref_date_col, "ref_date");
    p.sec_date = parse_date(sec_date_col, "sec_date");
    auto parse_time = [&](int col, const char* name) -> std::optional<double> {
      if (col < 0 || row[col].empty()) return std::nullopt;
      try {
        std::size_t used = 0;
        const double t = std::stod(row[col], &used);
        if (used != row[col].size() || !std::isfinite(t)) throw std::invalid_argument("trailing text");
        return t;
      } catch (const std::exception&) {
        throw FormatError(fmt::format("{} line {}, column {}: '{}' is not a time in seconds since 1970", csv_path,
                                      line, name, row[col]));
      }
    };
    p.ref_time_s = parse_time(ref_time_col, "ref_time_s");
    p.sec_time_s = parse_time(sec_time_col, "sec_time_s");
    if (!p.ref_time_s || !p.sec_time_s) p.ref_time_s = p.sec_time_s = std::nullopt;
    // Same-day pairs are two acquisitions when their times to the second differ.
    if (p.ref_date == p.sec_date && !(p.ref_time_s && *p.ref_time_s != *p.sec_time_s)) {
      throw FormatError(fmt::format("{} line {}: pair '{}' joins two images of the same date {}", csv_path,
                                    line, p.id, p.ref_date.iso()));
    }
    if (weight_col >= 0 && !row[weight_col].empty()) {
      try {
        std::size_t used = 0;
        p.weight = std::stod(row[weight_col], &used);
        if (used != row[weight_col].size()) throw std::invalid_argument("trailing text");
      } catch (const std::exception&) {
        throw FormatError(
            fmt::format("{} line {}, column weight: '{}' is not a number", csv_path, line, row[weight_col]));
      }
      if (!(p.weight > 0.0) || !std::isfinite(p.weight)) {
        throw FormatError(fmt::format("{} line {}, column weight: {} must be > 0", csv_path, line, p.weight));
      }
    }
    pairs.push_back(std::move(p));
  }
  if (pairs.empty()) throw FormatError(fmt::format("{}: the pair table lists no pair", csv_path));
  return pairs;
}

std::vector<io::Date> network_dates(const std::vector<Pair>& pairs,
                                    std::vector<std::pair<int, int>>* indices) {
  std::vector<io::Date> dates;
  for (const auto& p : pairs) {
    dates.push_back(p.ref_date);
    dates.push_back(p.sec_date);
  }
  std::sort(dates.begin(), dates.end());
  dates.erase(std::unique(dates.begin(), dates.end()), dates.end());
  if (indices != nullptr) {
    indices->clear();
    auto index_of = [&](const io::Date& d) {
      return static_cast<int>(std::lower_bound(dates.begin(), dates.end(), d) - dates.begin());
    };
    for (const auto& p : pairs) indices->emplace_back(index_of(p.ref_date), index_of(p.sec_date));
  }
  return dates;
}

Epoch Epoch::at(double time_s) {
  return {io::Date::from_days_since_epoch(static_cast<long long>(std::floor(time_s / 86400.0))), time_s};
}

Epoch Epoch::parse(const std::string& text) {
  static const std::regex instant(R"(^\s*(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)Z?\s*$)");
  std::smatch m;
  if (text.size() <= 64 && std::regex_match(text, m, instant)) {
    const io::Date day = io::Date::parse(m[1]);
    const int hours = std::stoi(m[2]), minutes = std::stoi(m[3]);
    const double seconds = std::stod(m[4]);
    if (hours > 23 || minutes > 59 || seconds >= 61.0) {
      throw InvalidArgument(fmt::format("'{}' is not a valid time of day", text));
    }
    return {day, static_cast<double>(day.days_since_epoch()) * 86400.0 + hours * 3600.0 + minutes * 60.0 +
                     seconds};
  }
  return {io::Date::parse(text), std::nullopt};
}

std::string Epoch::iso() const {
  if (!time_s) return date.iso();
  const double day_start_s = static_cast<double>(date.days_since_epoch()) * 86400.0;
  const auto second = static_cast<long long>(std::floor(*time_s - day_start_s));
  return fmt::format("{}T{:02d}:{:02d}:{:02d}Z", date.iso(), second / 3600, second / 60 % 60, second % 60);
}

std::vector<Epoch> network_epochs(const std::vector<Pair>& pairs, std::vector<std::pair<int, int>>* indices) {
  const Pair* timed = nullptr;
  const Pair* untimed = nullptr;
  for (const auto& p : pairs) {
    const bool has_times = p.ref_time_s && p.sec_time_s;
    if (has_times && timed == nullptr) timed = &p;
    if (!has_times && untimed == nullptr) untimed = &p;
  }
  if (timed == nullptr) {
    std::vector<Epoch> epochs;
    for (const auto& d : network_dates(pairs, indices)) epochs.push_back({d, std::nullopt});
    return epochs;
  }
  if (untimed != nullptr) {
    throw InvalidArgument(fmt::format(
        "pair {} ({}, {}) has no acquisition times (ref_time_s, sec_time_s) while pair {} has: the time axis "
        "of a network is either instants or dates; give every pair its times, or invert the two kinds apart",
        untimed->id, untimed->ref_path, untimed->sec_path, timed->id));
  }
  // One epoch per instant; the same image reached by several pairs carries the same time, and a pair table
  // written with microseconds reads back within a millisecond of it.
  constexpr double kSameInstantS = 1e-3;
  std::vector<double> times;
  for (const auto& p : pairs) {
    times.push_back(*p.ref_time_s);
    times.push_back(*p.sec_time_s);
  }
  std::sort(times.begin(), times.end());
  std::vector<double> distinct;
  for (const double t : times) {
    if (distinct.empty() || t - distinct.back() >= kSameInstantS) distinct.push_back(t);
  }
  if (indices != nullptr) {
    indices->clear();
    auto index_of = [&](double t) {
      // Each time went to the last epoch not after it.
      const auto it = std::upper_bound(distinct.begin(), distinct.end(), t);
      return static_cast<int>(it - distinct.begin()) - 1;
    };
    for (const auto& p : pairs) indices->emplace_back(index_of(*p.ref_time_s), index_of(*p.sec_time_s));
  }
  std::vector<Epoch> epochs;
  for (const double t : distinct) epochs.push_back(Epoch::at(t));
  return epochs;
}

int count_components(int date_count, const std::vector<std::pair<int, int>>& edges) {
  std::vector<int> parent(date_count);
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](int x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  int components = date_count;
  for (const auto& [a, b] : edges) {
    const int ra = find(a);
    const int rb = find(b);
    if (ra != rb) {
      parent[ra] = rb;
      --components;
    }
  }
  return components;
}

void write_pair_network_png(const std::string& png_path, const std::vector<Pair>& pairs,
                            const std::string& title) {
  std::vector<std::pair<int, int>> indices;
  const auto dates = network_dates(pairs, &indices);
  render::write_png(png_path, render::plot_pair_network(dates, indices, title));
}

}  // namespace deforma::timeseries
