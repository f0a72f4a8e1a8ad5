#pragma once
// Band arithmetic for derived map values ("speed" = hypot(east, north), differences of two bands...):
// numbers, variables, + - * / ^, unary minus, parentheses and the functions abs, sqrt, exp, log, log10,
// sin, cos, tan, atan, hypot(a, b), atan2(y, x), min(a, b), max(a, b). Variables are names of the caller's
// choosing (b1, east_m_per_yr, velocity_b3...). NaN propagates: a pixel with a nodata input is nodata.
#include <memory>
#include <string>
#include <vector>

namespace deforma::maps {

class Expression {
 public:
  /// Parses `text`. Throws InvalidArgument naming the expression, the position and what was expected.
  static Expression parse(const std::string& text);

  Expression(Expression&&) noexcept;
  Expression& operator=(Expression&&) noexcept;
  ~Expression();

  const std::string& text() const;
  /// The distinct variable names used, in order of first appearance.
  const std::vector<std::string>& variables() const;
  /// Evaluates at `count` pixels: inputs[i] holds the values of variables()[i]; writes `out`.
  void evaluate(const std::vector<const float*>& inputs, std::size_t count, float* out) const;

 private:
  Expression();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deforma::maps
