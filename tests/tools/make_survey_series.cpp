// deforma_survey_series YAHTSE_DIR OUTDIR [--glacier]: writes the survey tests' synthetic multi-tile,
// multi-orbit series (tests/pipeline/survey_series.hpp) into OUTDIR for the demo: the scenes and their
// cloud masks, scenes.csv (the manifest for `deforma survey`) and aoi.txt (the aoi as a bbox). With
// --glacier only a glacier crossing both tiles moves, over still rock, and outlines.geojson holds its
// outline (GLIMS attributes) for `deforma survey --glaciers`.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "pipeline/survey_series.hpp"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  const bool glacier = argc == 4 && std::string(argv[3]) == "--glacier";
  if (argc != 3 && !glacier) {
    std::fprintf(stderr, "usage: %s YAHTSE_DIR OUTDIR [--glacier]\n", argv[0]);
    return 3;
  }
  try {
    const fs::path out = argv[2];
    fs::create_directories(out);
    deforma::test::SurveySeriesOptions options;
    if (glacier) options.moving = deforma::test::kSurveyGlacierBox;
    const auto series = deforma::test::write_survey_series(out.string(), argv[1], options);
    std::ofstream(out / "aoi.txt") << series.aoi << '\n';
    if (glacier) {
      deforma::test::write_survey_outlines((out / "outlines.geojson").string(), series,
                                           {{"G999999E99999N", "Synthetic Glacier", *options.moving}});
    }
    std::printf("%s\n", series.manifest.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deforma_survey_series: %s\n", e.what());
    return 4;
  }
}
