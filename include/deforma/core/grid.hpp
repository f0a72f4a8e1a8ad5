#pragma once
// Grid<T>: a dense row-major 2-D array, the in-memory currency of deforma's kernels. The same kernels run
// on grids built in tests and on windows streamed from files (PDAL-style: one kernel, two modes).
#include <cstddef>
#include <vector>

#include "deforma/core/error.hpp"

namespace deforma {

template <typename T>
class Grid {
 public:
  Grid() = default;
  Grid(int width, int height, T fill = T{}) : width_(width), height_(height) {
    if (width < 0 || height < 0) throw InvalidArgument("Grid: negative size");
    data_.assign(static_cast<std::size_t>(width) * static_cast<std::size_t>(height), fill);
  }

  int width() const noexcept { return width_; }
  int height() const noexcept { return height_; }
  std::size_t size() const noexcept { return data_.size(); }
  bool empty() const noexcept { return data_.empty(); }

  T& operator()(int col, int row) noexcept { return data_[index(col, row)]; }
  const T& operator()(int col, int row) const noexcept { return data_[index(col, row)]; }
  bool contains(int col, int row) const noexcept {
    return col >= 0 && row >= 0 && col < width_ && row < height_;
  }

  T* data() noexcept { return data_.data(); }
  const T* data() const noexcept { return data_.data(); }
  T* row(int r) noexcept { return data_.data() + static_cast<std::size_t>(r) * width_; }
  const T* row(int r) const noexcept { return data_.data() + static_cast<std::size_t>(r) * width_; }
  std::vector<T>& values() noexcept { return data_; }
  const std::vector<T>& values() const noexcept { return data_; }
  void fill(T value) { std::fill(data_.begin(), data_.end(), value); }

 private:
  std::size_t index(int col, int row) const noexcept {
    return static_cast<std::size_t>(row) * static_cast<std::size_t>(width_) + static_cast<std::size_t>(col);
  }
  int width_ = 0;
  int height_ = 0;
  std::vector<T> data_;
};

using GridF = Grid<float>;
using GridU8 = Grid<unsigned char>;

}  // namespace deforma
