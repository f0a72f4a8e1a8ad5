#pragma once
// Correlation kernels of `deforma correlate`: sub-pixel matching of a chip of a reference image inside a
// secondary image, on in-memory windows. The streaming driver (tiles, node grid, COG output) calls these
// kernels on windows (tile + halo) of the two images; tests call them on grids built in memory.
//
// Conventions (all displacements in this module):
//   dx_px, dy_px is the displacement of a feature from REF to SEC: a feature at ref pixel (c, r) is found
//   at sec (c + dx_px, r + dy_px). +x = +column (right), +y = +row (down). Pixel (c, r) is the pixel whose
//   centre is at (c + 0.5, r + 0.5) in GDAL pixel coordinates.
//
// The algorithms, the SNR definition and the accuracy tables are described in docs/correlate.md.
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "deforma/core/grid.hpp"
#include "deforma/io/product.hpp"

namespace deforma::correlate {

/// Matching method (`--method`).
enum class Method {
  kNcc,    ///< zero-mean normalized cross-correlation (FFT + summed-area tables) + sub-pixel refinement
  kPhase,  ///< phase correlation with a raised-cosine taper and frequency masking (COSI-Corr style)
  kFlow,   ///< dense optical flow (OpenCV DIS), sampled at the nodes
};

/// Radiometric prefilter applied to both images before matching (`--prefilter`).
enum class Prefilter {
  kNone,
  kHighpass,     ///< image minus its Gaussian low-pass (sigma 1.5 px): removes illumination and shading
  kWallis,       ///< local mean/std normalization (15 px window): removes contrast and brightness changes
  kOrientation,  ///< real projection of the unit gradient, (gx + gy) / |grad|: depends on edge directions
                 ///< only
};

/// Sub-pixel refinement after the integer peak (MatchOptions::subpixel); docs/correlate.md compares them.
enum class Subpixel {
  kParabolic,  ///< separable parabola through the 3 x 3 neighbourhood of the integer peak
  kGaussian,   ///< separable Gaussian (parabola on log correlation) through the same neighbourhood
  kIterative,  ///< default: iterative re-matching (Lucas-Kanade, gain/offset invariant) with windowed-sinc
               ///< interpolation of the secondary chip, started at the parabolic estimate
};

/// Shape function of the sub-pixel refinement (`--shape`).
enum class Shape {
  kTranslation,  ///< the chip moves rigidly: (dx, dy)
  kAffine,       ///< the chip follows a displacement that varies linearly across it: (dx, dy) and the four
                 ///< displacement gradients, by inverse-compositional Gauss-Newton started at the translation
                 ///< (docs/correlate.md); nodes where that fit is ill-conditioned keep the translation
};

/// Parses `--method`: "ncc" | "phase" | "flow"; InvalidArgument naming --method otherwise.
Method parse_method(const std::string& text);
/// Parses `--prefilter`: "none" | "highpass" | "wallis" | "orientation"; InvalidArgument naming --prefilter.
Prefilter parse_prefilter(const std::string& text);
/// Parses `--shape`: "translation" | "affine"; InvalidArgument naming --shape otherwise.
Shape parse_shape(const std::string& text);
/// The command-line spelling of a method / prefilter / shape ("ncc", "wallis", "affine"...).
std::string to_string(Method method);
std::string to_string(Prefilter prefilter);
std::string to_string(Shape shape);

/// Per-node quality flag, written as is in the `flag` band: the product schema's (io/product.hpp), of which
/// matching sets 0..6. Every flag other than kValid comes with nodata (NaN) displacements.
using NodeFlag = io::product::NodeFlag;
/// Short name of a flag ("valid", "low_snr", ...), for reports.
const char* to_string(NodeFlag flag);

/// Bit added to the `flag` band of a valid node (flag value 16 instead of 0) when Shape::kAffine was asked
/// for and the node kept the translation: the affine fit was ill-conditioned (no texture along some
/// direction), diverged or saw too many invalid pixels. Its displacement is valid; its gradients are nodata.
inline constexpr std::uint8_t kTranslationOnlyBit = io::product::kTranslationOnlyBit;

struct MatchOptions {
  /// Bounds of chip_px and search_px, shared by validate() and the operations' declarations.
  static constexpr int kMinChipPx = 8;
  static constexpr int kMaxChipPx = 1024;
  static constexpr int kMinSearchPx = 2;
  static constexpr int kMaxSearchPx = 2048;

  Method method = Method::kNcc;
  /// Template (reference chip) size in pixels, even or odd, >= 8 (`--chip`).
  int chip_px = 32;
  /// Largest displacement searched around the guess, in pixels, in each direction (`--search`), >= 2.
  /// For the phase method the secondary window is the chip itself, so a direct search must be < chip_px / 2
  /// (coarse-to-fine lifts the limit).
  int search_px = 16;
  /// Nodes whose SNR is below: kLowSnr. SNR = peak correlation / the highest other local maximum of the
  /// correlation surface (docs/correlate.md). The default 2 separates true matches from unrelated chips on
  /// highpass-prefiltered images (Prefilter::kHighpass, the recommended default); unfiltered smooth images
  /// have flatter surfaces and lower SNR.
  double min_snr = 2.0;
  /// Nodes whose sub-pixel peak correlation is below: kLowSnr. 0 disables.
  double min_corr = 0.3;
  /// Chips whose standard deviation (image units, after prefiltering) is at or below: kNoTexture.
  /// A relative floor of 1e-5 x |mean| always applies, so numerically constant chips are caught at 0.
  double min_texture = 0.0;
  /// Fraction of invalid pixels in the reference chip or in the matched secondary chip above which the
  /// node is kMasked (or kOutsideOverlap when the pixels are outside the window).
  double max_invalid_fraction = 0.1;
  /// Sub-pixel refinement (ncc and phase).
  Subpixel subpixel = Subpixel::kIterative;
  /// Largest number of re-matching iterations of Subpixel::kIterative (and of the phase-plane fit).
  int max_iterations = 6;
  /// correlate_grid goes coarse-to-fine when search_px is larger than this (px); 0 never does. The coarse
  /// pass downsamples by 2 (by 4, 8... when the search exceeds 24, 48... px) and seeds a +-3 px fine search.
  int coarse_above_px = 6;
  /// Radiometric prefilter that correlate_grid applies to the windows (`--prefilter`). For coarse-to-fine it
  /// is applied to each level after downsampling the unfiltered images: a fine-scale highpass applied first
  /// would leave the coarse level almost no texture. Matcher itself expects windows already filtered and
  /// ignores this field.
  Prefilter prefilter = Prefilter::kNone;
  /// Shape function of the sub-pixel refinement (`--shape`; ncc and phase). Translation by default (also
  /// for `correlate`); the affine fit adds 5 to 95 % to the matching time (docs/correlate.md).
  Shape shape = Shape::kTranslation;

  /// Throws InvalidArgument naming the parameter (chip, search, min-snr...; unexposed ones by field name).
  void validate() const;
  /// Same options, field by field (MatcherPool keeps one matcher per distinct set).
  bool operator==(const MatchOptions&) const = default;
  /// Pixels of context a window needs on each side of a node for Matcher::match with these options
  /// (chip/2 + search + margin for the sub-pixel interpolation). The secondary window additionally needs
  /// the |guess| on each side. correlate_grid with coarse-to-fine needs more: see grid_halo_px().
  int halo_px() const;
};

/// Applies `filter` in place on a window (tile + halo) of an image. Invalid pixels (valid == 0) are
/// filled from their valid neighbourhood before filtering so that they do not ring, and set to 0 after.
/// The window needs a halo of prefilter_halo_px() pixels for interior values to match a whole-image run
/// (away from holes, whose filling looks about 12 px further).
void apply_prefilter(Prefilter filter, GridF& image, const GridU8& valid);
/// The same, into a new grid (`image` is left as it is).
GridF prefiltered(Prefilter filter, const GridF& image, const GridU8& valid);
/// Context (pixels) a prefilter needs around a window for its interior values to match a whole-image run.
int prefilter_halo_px(Prefilter filter);
/// Context (pixels) around a window with invalid pixels (holes, outside the image) for the prefiltered
/// values of its interior to match a whole-image run: prefilter_halo_px() plus the reach of the hole filling.
int prefilter_context_px(Prefilter filter);

/// A window of an image in full-image pixel coordinates: (*values)(c, r) is image pixel
/// (origin_col + c, origin_row + r). `valid` may be null (all valid); when set it has the same size.
/// Pixels outside the window count as outside the image.
struct ImageWindow {
  const GridF* values = nullptr;
  const GridU8* valid = nullptr;
  int origin_col = 0;
  int origin_row = 0;
};

/// A window that owns its pixels (the streaming driver's strips, the coarse levels of coarse-to-fine).
struct ImageBuffer {
  GridF values;
  GridU8 valid;  ///< same size as values; 0 = invalid
  int origin_col = 0;
  int origin_row = 0;
  ImageWindow view() const { return ImageWindow{&values, &valid, origin_col, origin_row}; }
};

/// Result at one node. Invalid nodes have NaN displacements (corr/snr are kept when they were computed).
struct NodeResult {
  float dx_px = std::numeric_limits<float>::quiet_NaN();
  float dy_px = std::numeric_limits<float>::quiet_NaN();
  float corr = std::numeric_limits<float>::quiet_NaN();  ///< correlation at the sub-pixel peak, [-1, 1]
  float snr = std::numeric_limits<float>::quiet_NaN();   ///< see docs/correlate.md
  NodeFlag flag = NodeFlag::kNoPeak;
  /// Displacement gradients (px/px) of the affine fit: d(dx)/dx, d(dx)/dy, d(dy)/dx, d(dy)/dy with x along
  /// columns and y along rows. NaN unless Shape::kAffine fitted them at a valid node.
  float dudx = std::numeric_limits<float>::quiet_NaN();
  float dudy = std::numeric_limits<float>::quiet_NaN();
  float dvdx = std::numeric_limits<float>::quiet_NaN();
  float dvdy = std::numeric_limits<float>::quiet_NaN();
  /// Shape::kAffine was asked for and this valid node kept the translation (see kTranslationOnlyBit).
  bool translation_only = false;
};

/// Matches chips of a reference window inside a secondary window (ncc or phase). Holds FFTW plans and
/// work buffers: not thread-safe; create one per thread (tbb::enumerable_thread_specific). Plans are made
/// once per size and shared (planning is serialized by a global mutex; execution is thread-safe).
/// Results do not depend on which Matcher instance computes a node.
class Matcher {
 public:
  /// Validates `options` (InvalidArgument). method must be kNcc or kPhase.
  explicit Matcher(const MatchOptions& options);
  ~Matcher();
  Matcher(Matcher&&) noexcept;
  Matcher& operator=(Matcher&&) noexcept;
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;

  const MatchOptions& options() const;

  /// Matches the chip of `ref` centred on image pixel (col, row) inside `sec` around
  /// (col + guess_dx_px, row + guess_dy_px), searching +-search_px. Never throws per node: failures are
  /// reported by the flag.
  NodeResult match(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double guess_dx_px = 0,
                   double guess_dy_px = 0);

  /// Quality of a given displacement (for the flow method and for checks): corr is the zero-mean NCC of the
  /// reference chip with the secondary chip interpolated at (col + dx_px, row + dy_px); snr is computed on
  /// the integer NCC surface over +-search_px around the displacement; the flag follows the same rules as
  /// match() (low SNR, no texture, masked, outside). The returned dx/dy are the given ones (NaN if invalid).
  NodeResult evaluate(const ImageWindow& ref, const ImageWindow& sec, int col, int row, double dx_px,
                      double dy_px);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The matchers of a run, made once: one per worker thread and per options set (the direct or fine search,
/// the coarse level, the full-range re-check of coarse-to-fine, the flow's evaluation), each made on its
/// thread's first use and kept for every later window (strip) the run hands to correlate_grid, so that
/// buffers, chip-sized tables and the affine refiner are not rebuilt per strip. Thread-safe: a thread only
/// touches its own matchers. Results do not depend on the pool (a Matcher's results depend on its options
/// only).
class MatcherPool {
 public:
  MatcherPool();
  ~MatcherPool();
  MatcherPool(const MatcherPool&) = delete;
  MatcherPool& operator=(const MatcherPool&) = delete;

  /// The calling thread's matcher for `options`, made on first use (InvalidArgument as Matcher's
  /// constructor). The reference stays valid for the life of the pool; use it on this thread only, and not
  /// across a call that may run other tasks of oneTBB on this thread.
  Matcher& local(const MatchOptions& options);

  /// Matchers made so far, over all threads and options sets.
  long long made() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Free-function form of Matcher::evaluate (makes a temporary Matcher; prefer the member in loops).
NodeResult evaluate_displacement(const ImageWindow& ref, const ImageWindow& sec, int col, int row,
                                 double dx_px, double dy_px, const MatchOptions& options);

/// Dense optical flow (OpenCV DIS, medium preset + variational refinement) of a whole window pair, both
/// rescaled to 8 bits with the same linear mapping (robust 0.5 / 99.5 % percentiles of the valid pixels):
/// dx/dy per pixel (+x = +column, +y = +row) such that sec(c + dx, r + dy) ~ ref(c, r). Invalid pixels
/// are filled from their neighbourhood before the flow; the flow there is not meaningful (NaN).
/// Throws InvalidArgument when the two windows differ in size.
struct FlowField {
  GridF dx_px;
  GridF dy_px;
};
FlowField dense_flow(const GridF& ref, const GridU8& ref_valid, const GridF& sec, const GridU8& sec_valid);

/// A regular grid of nodes in full-image pixel coordinates: node (i, j) is image pixel
/// (first_col + i * step_px, first_row + j * step_px).
struct NodeGrid {
  int first_col = 0;
  int first_row = 0;
  int step_px = 16;
  int cols = 0;
  int rows = 0;
};

/// Per-node results on a NodeGrid (cols x rows). flag holds NodeFlag values.
struct GridResult {
  GridF dx_px;
  GridF dy_px;
  GridF corr;
  GridF snr;
  GridU8 flag;
  /// Displacement gradients (px/px) with Shape::kAffine; NaN where not fitted (and everywhere otherwise).
  GridF dudx, dudy, dvdx, dvdy;
  /// 1 where a valid node kept the translation although Shape::kAffine was asked for.
  GridU8 translation_only;
  /// Number of nodes with each flag value (index = NodeFlag).
  std::array<long long, 7> flag_counts{};
};

/// In-memory node loop: matches every node of `nodes` (parallel with oneTBB; identical results for any
/// thread count) on the unfiltered windows, prefiltered here with options.prefilter (on copies; see
/// correlate_grid_in_place). `guess_dx_px` / `guess_dy_px` (optional, nodes-sized, NaN = no guess) seed each
/// node. Large motion: when options.search_px > options.coarse_above_px (ncc, phase), a coarse pass on images
/// downsampled by 2^k finds the displacement (median-filtered) and the fine pass searches a few pixels
/// around it (docs/correlate.md). For Method::kFlow, dense_flow is run on the windows and sampled at the
/// nodes, then evaluated (corr/snr/flag) with Matcher::evaluate.
/// The windows should cover the nodes plus grid_halo_px(options, nodes.step_px) (and |guess| for sec);
/// uncovered parts count as outside. With that context the results at a node do not depend on how the
/// image is cut into windows (strips), nor on the number of threads.
/// This form makes its own MatcherPool; a caller that matches many windows (the pair driver's strips)
/// passes one pool to the form below for the whole run.
GridResult correlate_grid(const ImageWindow& ref, const ImageWindow& sec, const MatchOptions& options,
                          const NodeGrid& nodes, const GridF* guess_dx_px = nullptr,
                          const GridF* guess_dy_px = nullptr);
/// correlate_grid with the matchers taken from `matchers` (same results).
GridResult correlate_grid(const ImageWindow& ref, const ImageWindow& sec, const MatchOptions& options,
                          const NodeGrid& nodes, MatcherPool& matchers, const GridF* guess_dx_px = nullptr,
                          const GridF* guess_dy_px = nullptr);

/// correlate_grid on windows it may modify: options.prefilter is applied in place (after the coarse levels
/// are taken from the unfiltered values), so that a caller that no longer needs the raw pixels saves a copy.
/// Same results as correlate_grid on views of the same windows.
GridResult correlate_grid_in_place(ImageBuffer& ref, ImageBuffer& sec, const MatchOptions& options,
                                   const NodeGrid& nodes, const GridF* guess_dx_px = nullptr,
                                   const GridF* guess_dy_px = nullptr);
GridResult correlate_grid_in_place(ImageBuffer& ref, ImageBuffer& sec, const MatchOptions& options,
                                   const NodeGrid& nodes, MatcherPool& matchers,
                                   const GridF* guess_dx_px = nullptr, const GridF* guess_dy_px = nullptr);

/// Context (pixels, each side) correlate_grid needs around its nodes for `options` and a node spacing of
/// `step_px`: halo_px() for a direct search; for coarse-to-fine also the coarse chips of the coarse nodes
/// computed up to three coarse spacings beyond the grid; plus the context of the prefilter at each level
/// (so that strips give the same result as one window over the whole image). Validates `options`.
int grid_halo_px(const MatchOptions& options, int step_px);

}  // namespace deforma::correlate
