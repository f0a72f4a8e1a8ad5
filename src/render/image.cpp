#include "deforma/render/image.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <opencv2/imgproc.hpp>

#include "deforma/core/error.hpp"
#include "deforma/io/staged_file.hpp"

namespace deforma::render {
namespace {

// OpenCV works on a BGR/RGB agnostic Mat; we keep RGB order and pass colours in the same order.
cv::Scalar to_scalar(Rgb c) {
  return cv::Scalar(c.r, c.g, c.b);
}

cv::Mat wrap(RgbImage& image) {
  return cv::Mat(image.height(), image.width(), CV_8UC3, image.data());
}

// Fixed-point shift for sub-pixel drawing precision in OpenCV calls.
constexpr int kShift = 4;
cv::Point sub_pixel(double x, double y) {
  return cv::Point(static_cast<int>(std::lround(x * (1 << kShift))),
                   static_cast<int>(std::lround(y * (1 << kShift))));
}

}  // namespace

RgbImage::RgbImage(int width, int height, Rgb fill) : width_(width), height_(height) {
  if (width <= 0 || height <= 0) {
    throw InvalidArgument(fmt::format("RgbImage: size {}x{} must be positive", width, height));
  }
  bytes_.resize(static_cast<std::size_t>(width) * height * 3);
  for (std::size_t i = 0; i < bytes_.size(); i += 3) {
    bytes_[i] = fill.r;
    bytes_[i + 1] = fill.g;
    bytes_[i + 2] = fill.b;
  }
}

Rgb RgbImage::at(int col, int row) const {
  if (!contains(col, row))
    throw InvalidArgument(fmt::format("RgbImage::at({}, {}) outside the image", col, row));
  const std::size_t i = (static_cast<std::size_t>(row) * width_ + col) * 3;
  return {bytes_[i], bytes_[i + 1], bytes_[i + 2]};
}

void RgbImage::set(int col, int row, Rgb color) {
  if (!contains(col, row)) return;
  const std::size_t i = (static_cast<std::size_t>(row) * width_ + col) * 3;
  bytes_[i] = color.r;
  bytes_[i + 1] = color.g;
  bytes_[i + 2] = color.b;
}

void RgbImage::paste(const RgbImage& other, int col, int row) {
  for (int r = 0; r < other.height(); ++r) {
    const int tr = row + r;
    if (tr < 0 || tr >= height_) continue;
    for (int c = 0; c < other.width(); ++c) {
      const int tc = col + c;
      if (tc < 0 || tc >= width_) continue;
      const std::size_t src = (static_cast<std::size_t>(r) * other.width() + c) * 3;
      const std::size_t dst = (static_cast<std::size_t>(tr) * width_ + tc) * 3;
      std::copy_n(other.bytes_.data() + src, 3, bytes_.data() + dst);
    }
  }
}

void RgbImage::fill_rect(int col, int row, int width, int height, Rgb color) {
  if (width <= 0 || height <= 0) return;
  cv::Mat mat = wrap(*this);
  cv::rectangle(mat, cv::Rect(col, row, width, height), to_scalar(color), cv::FILLED);
}

void RgbImage::draw_rect(int col, int row, int width, int height, Rgb color, int thickness) {
  if (width <= 0 || height <= 0) return;
  cv::Mat mat = wrap(*this);
  cv::rectangle(mat, cv::Rect(col, row, width, height), to_scalar(color), thickness);
}

void RgbImage::draw_line(double x0, double y0, double x1, double y1, Rgb color, int thickness) {
  cv::Mat mat = wrap(*this);
  cv::line(mat, sub_pixel(x0, y0), sub_pixel(x1, y1), to_scalar(color), thickness, cv::LINE_AA, kShift);
}

void RgbImage::draw_arrow(double x0, double y0, double x1, double y1, Rgb color, int thickness,
                          double tip_fraction) {
  cv::Mat mat = wrap(*this);
  cv::arrowedLine(mat, sub_pixel(x0, y0), sub_pixel(x1, y1), to_scalar(color), thickness, cv::LINE_AA, kShift,
                  tip_fraction);
}

void RgbImage::draw_circle(double x, double y, int radius, Rgb color, bool filled) {
  cv::Mat mat = wrap(*this);
  cv::circle(mat, sub_pixel(x, y), radius << kShift, to_scalar(color), filled ? cv::FILLED : 1, cv::LINE_AA,
             kShift);
}

void RgbImage::draw_ellipse_arc(double cx, double cy, double half_width, double half_height, double start_deg,
                                double end_deg, Rgb color, int thickness) {
  cv::Mat mat = wrap(*this);
  const cv::Size axes(static_cast<int>(std::lround(half_width * (1 << kShift))),
                      static_cast<int>(std::lround(half_height * (1 << kShift))));
  cv::ellipse(mat, sub_pixel(cx, cy), axes, 0.0, start_deg, end_deg, to_scalar(color), thickness, cv::LINE_AA,
              kShift);
}

void RgbImage::text_size(const std::string& text, double scale, int thickness, int& width, int& height) {
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, thickness, &baseline);
  width = size.width;
  height = size.height + baseline;
}

int RgbImage::draw_text(const std::string& text, double x, double y, Rgb color, double scale, Anchor anchor,
                        int thickness) {
  if (text.empty()) return 0;
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, thickness, &baseline);
  double left = x;
  double top = y;
  switch (anchor) {
    case Anchor::kTopLeft:
      break;
    case Anchor::kTopCenter:
      left = x - size.width / 2.0;
      break;
    case Anchor::kTopRight:
      left = x - size.width;
      break;
    case Anchor::kCenterLeft:
      top = y - size.height / 2.0;
      break;
    case Anchor::kCenter:
      left = x - size.width / 2.0;
      top = y - size.height / 2.0;
      break;
    case Anchor::kCenterRight:
      left = x - size.width;
      top = y - size.height / 2.0;
      break;
    case Anchor::kBottomCenter:
      left = x - size.width / 2.0;
      top = y - size.height - baseline;
      break;
  }
  cv::Mat mat = wrap(*this);
  // putText's origin is the bottom-left of the text (baseline), so shift by the text height.
  cv::putText(
      mat, text,
      cv::Point(static_cast<int>(std::lround(left)), static_cast<int>(std::lround(top)) + size.height),
      cv::FONT_HERSHEY_SIMPLEX, scale, to_scalar(color), thickness, cv::LINE_AA);
  return size.width;
}

void RgbImage::draw_text_vertical(const std::string& text, double x, double y, Rgb color, double scale) {
  if (text.empty()) return;
  int w = 0;
  int h = 0;
  text_size(text, scale, 1, w, h);
  RgbImage strip(w + 4, h + 4, colors::kWhite);
  strip.draw_text(text, 2, 2, color, scale);
  // Rotate 90 degrees counter-clockwise: (c, r) -> (r, W-1-c); paint only non-background pixels.
  const int left = static_cast<int>(std::lround(x - strip.height() / 2.0));
  const int top = static_cast<int>(std::lround(y - strip.width() / 2.0));
  for (int r = 0; r < strip.height(); ++r) {
    for (int c = 0; c < strip.width(); ++c) {
      const Rgb px = strip.at(c, r);
      if (px == colors::kWhite) continue;
      set(left + r, top + strip.width() - 1 - c, px);
    }
  }
}

void write_png(const std::string& path, const RgbImage& image) {
  if (image.width() <= 0 || image.height() <= 0) {
    throw InvalidArgument(fmt::format("write_png {}: the image is empty", path));
  }
  GDALAllRegister();
  io::write_atomically(path, [&](const std::string& tmp) {
    GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
    GDALDriver* png = GetGDALDriverManager()->GetDriverByName("PNG");
    if (mem == nullptr || png == nullptr) throw IoError("write_png: GDAL's MEM or PNG driver is missing");
    std::unique_ptr<GDALDataset> ds(mem->Create("", image.width(), image.height(), 3, GDT_Byte, nullptr));
    if (!ds) throw IoError(fmt::format("write_png {}: cannot create the in-memory image", path));
    for (int band = 1; band <= 3; ++band) {
      // Interleaved source: pixel spacing 3 bytes, line spacing width*3.
      const CPLErr err = ds->GetRasterBand(band)->RasterIO(
          GF_Write, 0, 0, image.width(), image.height(), const_cast<std::uint8_t*>(image.data()) + (band - 1),
          image.width(), image.height(), GDT_Byte, 3, static_cast<GSpacing>(image.width()) * 3, nullptr);
      if (err != CE_None) throw IoError(fmt::format("write_png {}: cannot fill band {}", path, band));
    }
    // The PNG driver writes these creation options as tEXt chunks; other keys have no option.
    CPLStringList png_options;
    for (const auto& [key, value] : image.text()) {
      if (key == "Title") png_options.SetNameValue("TITLE", value.c_str());
      if (key == "Description") png_options.SetNameValue("DESCRIPTION", value.c_str());
    }
    std::unique_ptr<GDALDataset> out(
        png->CreateCopy(tmp.c_str(), ds.get(), FALSE, png_options.List(), nullptr, nullptr));
    if (!out)
      throw IoError(fmt::format("write_png {}: GDAL PNG driver failed: {}", path, CPLGetLastErrorMsg()));
    out.reset();
    // The PNG driver writes a side-car .aux.xml only for extra metadata; none here, but remove if present.
    VSIUnlink((tmp + ".aux.xml").c_str());
  });
}

RgbImage read_rgb(const std::string& path) {
  GDALAllRegister();
  std::unique_ptr<GDALDataset> ds(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  if (!ds) throw IoError(fmt::format("cannot open image {}", path));
  const int w = ds->GetRasterXSize();
  const int h = ds->GetRasterYSize();
  const int bands = ds->GetRasterCount();
  if (bands < 1) throw FormatError(fmt::format("{}: no raster band", path));
  RgbImage image(w, h);
  for (int c = 0; c < 3; ++c) {
    const int band = bands >= 3 ? c + 1 : 1;
    const CPLErr err = ds->GetRasterBand(band)->RasterIO(GF_Read, 0, 0, w, h, image.data() + c, w, h,
                                                         GDT_Byte, 3, static_cast<GSpacing>(w) * 3, nullptr);
    if (err != CE_None) throw IoError(fmt::format("{}: cannot read band {}", path, band));
  }
  for (const char* key : {"Title", "Description"}) {
    if (const char* value = ds->GetMetadataItem(key)) image.text()[key] = value;
  }
  return image;
}

}  // namespace deforma::render
