#include "deforma/maps/expression.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "deforma/core/error.hpp"

namespace deforma::maps {
namespace {

// A tree evaluated over whole arrays, node by node: one pass per operation keeps the inner loops simple
// and vectorisable, which matters more than the temporary arrays for 256x256 tiles.
struct Node {
  enum Kind { kNumber, kVariable, kUnary, kBinary, kCall } kind = kNumber;
  double number = 0;
  int variable = -1;
  char op = 0;
  std::string function;
  std::vector<std::unique_ptr<Node>> args;
};

using Unary = double (*)(double);
const std::map<std::string, Unary>& unary_functions() {
  static const std::map<std::string, Unary> f{
      {"abs", [](double v) { return std::fabs(v); }},    {"sqrt", [](double v) { return std::sqrt(v); }},
      {"exp", [](double v) { return std::exp(v); }},     {"log", [](double v) { return std::log(v); }},
      {"log10", [](double v) { return std::log10(v); }}, {"sin", [](double v) { return std::sin(v); }},
      {"cos", [](double v) { return std::cos(v); }},     {"tan", [](double v) { return std::tan(v); }},
      {"atan", [](double v) { return std::atan(v); }}};
  return f;
}

using Binary = double (*)(double, double);
const std::map<std::string, Binary>& binary_functions() {
  static const std::map<std::string, Binary> f{
      {"hypot", [](double a, double b) { return std::hypot(a, b); }},
      {"atan2", [](double a, double b) { return std::atan2(a, b); }},
      {"min", [](double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::min(a, b); }},
      {"max", [](double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b); }}};
  return f;
}

class Parser {
 public:
  Parser(const std::string& text, std::vector<std::string>& variables) : text_(text), vars_(variables) {}

  std::unique_ptr<Node> parse() {
    auto node = sum();
    skip();
    if (pos_ < text_.size()) fail(fmt::format("unexpected '{}'", text_[pos_]));
    return node;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw InvalidArgument(fmt::format("expression '{}': {} at character {}", text_, what, pos_ + 1));
  }
  void skip() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool accept(char c) {
    skip();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  static std::unique_ptr<Node> binary(char op, std::unique_ptr<Node> a, std::unique_ptr<Node> b) {
    auto n = std::make_unique<Node>();
    n->kind = Node::kBinary;
    n->op = op;
    n->args.push_back(std::move(a));
    n->args.push_back(std::move(b));
    return n;
  }
  std::unique_ptr<Node> sum() {
    auto left = product();
    for (;;) {
      if (accept('+'))
        left = binary('+', std::move(left), product());
      else if (accept('-'))
        left = binary('-', std::move(left), product());
      else
        return left;
    }
  }
  std::unique_ptr<Node> product() {
    auto left = unary();
    for (;;) {
      if (accept('*'))
        left = binary('*', std::move(left), unary());
      else if (accept('/'))
        left = binary('/', std::move(left), unary());
      else
        return left;
    }
  }
  std::unique_ptr<Node> unary() {
    if (accept('-')) {
      auto n = std::make_unique<Node>();
      n->kind = Node::kUnary;
      n->op = '-';
      n->args.push_back(unary());
      return n;
    }
    if (accept('+')) return unary();
    return power();
  }
  std::unique_ptr<Node> power() {
    auto base = primary();
    if (accept('^')) return binary('^', std::move(base), unary());  // right-associative
    return base;
  }
  std::unique_ptr<Node> primary() {
    skip();
    if (pos_ >= text_.size()) fail("expected a number, a band or '('");
    if (accept('(')) {
      auto inner = sum();
      if (!accept(')')) fail("expected ')'");
      return inner;
    }
    const char c = text_[pos_];
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      const char* start = text_.c_str() + pos_;
      char* end = nullptr;
      const double v = std::strtod(start, &end);
      if (end == start) fail("expected a number");
      pos_ += static_cast<std::size_t>(end - start);
      auto n = std::make_unique<Node>();
      n->number = v;
      return n;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const std::size_t start = pos_;
      while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) ||
                                     text_[pos_] == '_' || text_[pos_] == ':'))
        ++pos_;
      std::string name = text_.substr(start, pos_ - start);
      if (accept('(')) return call(name);
      auto n = std::make_unique<Node>();
      n->kind = Node::kVariable;
      auto it = std::find(vars_.begin(), vars_.end(), name);
      n->variable = static_cast<int>(it - vars_.begin());
      if (it == vars_.end()) vars_.push_back(name);
      return n;
    }
    fail(fmt::format("unexpected '{}'", c));
  }
  std::unique_ptr<Node> call(const std::string& name) {
    const bool is_unary = unary_functions().count(name) > 0;
    const bool is_binary = binary_functions().count(name) > 0;
    if (!is_unary && !is_binary) {
      fail(
          fmt::format("unknown function '{}' (expected abs, sqrt, exp, log, log10, sin, cos, tan, atan, "
                      "hypot, atan2, min or max)",
                      name));
    }
    auto n = std::make_unique<Node>();
    n->kind = Node::kCall;
    n->function = name;
    n->args.push_back(sum());
    if (is_binary) {
      if (!accept(',')) fail(fmt::format("{}() takes two arguments: expected ','", name));
      n->args.push_back(sum());
    }
    if (!accept(')')) fail("expected ')'");
    return n;
  }

  const std::string& text_;
  std::vector<std::string>& vars_;
  std::size_t pos_ = 0;
};

void eval(const Node& n, const std::vector<const float*>& in, std::size_t count, std::vector<double>& out) {
  out.resize(count);
  switch (n.kind) {
    case Node::kNumber:
      std::fill(out.begin(), out.end(), n.number);
      return;
    case Node::kVariable: {
      const float* v = in[static_cast<std::size_t>(n.variable)];
      for (std::size_t i = 0; i < count; ++i) out[i] = v[i];
      return;
    }
    case Node::kUnary:
      eval(*n.args[0], in, count, out);
      for (auto& v : out) v = -v;
      return;
    case Node::kBinary: {
      std::vector<double> b;
      eval(*n.args[0], in, count, out);
      eval(*n.args[1], in, count, b);
      switch (n.op) {
        case '+':
          for (std::size_t i = 0; i < count; ++i) out[i] += b[i];
          break;
        case '-':
          for (std::size_t i = 0; i < count; ++i) out[i] -= b[i];
          break;
        case '*':
          for (std::size_t i = 0; i < count; ++i) out[i] *= b[i];
          break;
        case '/':
          for (std::size_t i = 0; i < count; ++i) out[i] = b[i] == 0 ? NAN : out[i] / b[i];
          break;
        default:
          for (std::size_t i = 0; i < count; ++i) out[i] = std::pow(out[i], b[i]);
          break;
      }
      return;
    }
    case Node::kCall: {
      eval(*n.args[0], in, count, out);
      if (n.args.size() == 1) {
        const Unary f = unary_functions().at(n.function);
        for (auto& v : out) v = f(v);
      } else {
        std::vector<double> b;
        eval(*n.args[1], in, count, b);
        const Binary f = binary_functions().at(n.function);
        for (std::size_t i = 0; i < count; ++i) out[i] = f(out[i], b[i]);
      }
      return;
    }
  }
}

}  // namespace

struct Expression::Impl {
  std::string text;
  std::vector<std::string> variables;
  std::unique_ptr<Node> root;
};

Expression::Expression() : impl_(std::make_unique<Impl>()) {}
Expression::Expression(Expression&&) noexcept = default;
Expression& Expression::operator=(Expression&&) noexcept = default;
Expression::~Expression() = default;

Expression Expression::parse(const std::string& text) {
  if (text.size() > 1000) throw InvalidArgument("expression: longer than 1000 characters");
  Expression e;
  e.impl_->text = text;
  Parser parser(e.impl_->text, e.impl_->variables);
  e.impl_->root = parser.parse();
  return e;
}

const std::string& Expression::text() const {
  return impl_->text;
}
const std::vector<std::string>& Expression::variables() const {
  return impl_->variables;
}

void Expression::evaluate(const std::vector<const float*>& inputs, std::size_t count, float* out) const {
  if (inputs.size() != impl_->variables.size()) {
    throw InvalidArgument(fmt::format("expression '{}': {} inputs for {} variables", impl_->text,
                                      inputs.size(), impl_->variables.size()));
  }
  std::vector<double> result;
  eval(*impl_->root, inputs, count, result);
  for (std::size_t i = 0; i < count; ++i) {
    out[i] = std::isfinite(result[i]) ? static_cast<float>(result[i]) : NAN;
  }
}

}  // namespace deforma::maps
