#pragma once
// RgbImage: an 8-bit RGB raster in memory, the canvas of every deforma graphic (quicklooks, legends,
// plots), and write_png() to save it. Drawing primitives are thin wrappers over OpenCV imgproc so callers
// need not depend on OpenCV.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "deforma/core/grid.hpp"

namespace deforma::render {

struct Rgb {
  std::uint8_t r = 0;
  std::uint8_t g = 0;
  std::uint8_t b = 0;
  bool operator==(const Rgb&) const = default;
};

namespace colors {
inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};
inline constexpr Rgb kGrey{128, 128, 128};
inline constexpr Rgb kLightGrey{220, 220, 220};
inline constexpr Rgb kNodata{200, 200, 200};  ///< nodata pixels of quicklooks
inline constexpr Rgb kBlue{31, 119, 180};
inline constexpr Rgb kRed{214, 39, 40};
}  // namespace colors

/// A row-major RGB image (3 bytes per pixel, no padding). Coordinates are (col, row), origin top-left.
class RgbImage {
 public:
  RgbImage() = default;
  RgbImage(int width, int height, Rgb fill = colors::kWhite);

  int width() const noexcept { return width_; }
  int height() const noexcept { return height_; }
  bool contains(int col, int row) const noexcept {
    return col >= 0 && row >= 0 && col < width_ && row < height_;
  }
  Rgb at(int col, int row) const;
  void set(int col, int row, Rgb color);
  /// Interleaved bytes r,g,b,r,g,b... (width*height*3).
  std::uint8_t* data() noexcept { return bytes_.data(); }
  const std::uint8_t* data() const noexcept { return bytes_.data(); }

  /// Copies `other` with its top-left corner at (col, row); parts outside are clipped.
  void paste(const RgbImage& other, int col, int row);

  // Drawing (antialiased where it helps legibility). Coordinates in pixels, may be fractional.
  void fill_rect(int col, int row, int width, int height, Rgb color);
  void draw_rect(int col, int row, int width, int height, Rgb color, int thickness = 1);
  void draw_line(double x0, double y0, double x1, double y1, Rgb color, int thickness = 1);
  void draw_arrow(double x0, double y0, double x1, double y1, Rgb color, int thickness = 1,
                  double tip_fraction = 0.3);
  void draw_circle(double x, double y, int radius, Rgb color, bool filled = true);
  /// Draws an elliptic arc through angle range [start_deg, end_deg] of the ellipse centred at (cx, cy).
  void draw_ellipse_arc(double cx, double cy, double half_width, double half_height, double start_deg,
                        double end_deg, Rgb color, int thickness = 1);

  /// Text anchors: where (x, y) lies on the text's box.
  enum class Anchor { kTopLeft, kTopCenter, kTopRight, kCenterLeft, kCenter, kCenterRight, kBottomCenter };
  /// Draws `text` (ASCII) with a Hershey font; `scale` 0.4 is about 9 px high. Returns the width drawn.
  int draw_text(const std::string& text, double x, double y, Rgb color, double scale = 0.45,
                Anchor anchor = Anchor::kTopLeft, int thickness = 1);
  /// Same, rotated by 90 degrees counter-clockwise (vertical axis titles); (x, y) is the centre.
  void draw_text_vertical(const std::string& text, double x, double y, Rgb color, double scale = 0.45);
  /// Size of `text` in pixels for `scale` (width, height above baseline + baseline).
  static void text_size(const std::string& text, double scale, int thickness, int& width, int& height);

  /// Text stored with the image by write_png as PNG text chunks ("Title", "Description"), so that a
  /// figure's title can be read without looking at its pixels (viewers, catalogues, tests).
  std::map<std::string, std::string>& text() noexcept { return text_; }
  const std::map<std::string, std::string>& text() const noexcept { return text_; }

 private:
  int width_ = 0;
  int height_ = 0;
  std::vector<std::uint8_t> bytes_;
  std::map<std::string, std::string> text_;
};

/// Writes `image` as an 8-bit RGB PNG through GDAL's PNG driver, atomically (never half-written under
/// the final name), with image.text()'s "Title" and "Description" as PNG text chunks. Throws IoError
/// naming the file.
void write_png(const std::string& path, const RgbImage& image);

/// Reads a PNG (or any 8-bit RGB/grey raster GDAL reads) back as an RgbImage; for tests and tools.
/// The PNG's text chunks come back in text().
RgbImage read_rgb(const std::string& path);

}  // namespace deforma::render
