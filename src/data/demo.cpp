#include "llavacot/data/demo.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>
#include <unistd.h>

#include "llavacot/text/bpe_trainer.h"
#include "llavacot/util/base64.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"

namespace llavacot::data {
namespace {

// ---------------------------------------------------------------------------------------------------------
// Randomness: splitmix64 with the range reduction written out, so the output does not depend on how a
// standard library implements its distributions.

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [lo, hi].
  int uniform(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1)); }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform_real(double lo, double hi) { return lo + (hi - lo) * unit(); }
  bool chance(double p) { return unit() < p; }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(uniform(0, static_cast<int>(v.size()) - 1))];
  }
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[next() % i]);
  }

 private:
  uint64_t state_;
};

uint64_t stream_seed(uint64_t seed, uint64_t stream, uint64_t index) {
  Rng r(seed ^ (stream * 0xD1B54A32D192ED03ull) ^ (index * 0x8CB92BA72F3D8DD7ull));
  r.next();
  return r.next();
}

// ---------------------------------------------------------------------------------------------------------
// Scenes. Coordinates are fractions of the image side, so one scene draws at any size.

constexpr int kColours = 4, kShapes = 3;
// The most shapes a shapes scene holds (spec/demo.md measured 1-5): with more, a model of the demo's size misreads
// the picture too often for counts and comparisons to come out right.
constexpr int kMaxObjects = 5;
const std::array<const char*, kColours> kColourNames = {"red", "blue", "green", "yellow"};
const std::array<cv::Scalar, kColours> kColourBgr = {cv::Scalar(40, 40, 220), cv::Scalar(210, 90, 30),
                                                     cv::Scalar(50, 160, 40), cv::Scalar(20, 200, 235)};
const std::array<const char*, kShapes> kShapeNames = {"circle", "square", "triangle"};
const std::array<const char*, kShapes> kShapePlurals = {"circles", "squares", "triangles"};

struct Obj {
  int shape = 0, colour = 0;
  double x = 0.5, y = 0.5, r = 0.1;
};

enum class SceneType { kShapes, kChart, kDiagram };

struct Scene {
  SceneType type = SceneType::kShapes;
  std::vector<Obj> objs;                    // shapes, or diagram nodes
  std::vector<int> bar_colours, bar_values;  // chart, left to right; values 1..9
  std::vector<std::pair<int, int>> arrows;  // diagram: node index -> node index
};

std::string obj_name(const Obj& o) { return str_cat(kColourNames[o.colour], " ", kShapeNames[o.shape]); }
std::string the(const Obj& o) { return "the " + obj_name(o); }

std::string where(const Obj& o) {
  const char* col = o.x < 1.0 / 3 ? "left" : o.x < 2.0 / 3 ? "" : "right";
  const char* row = o.y < 1.0 / 3 ? "top" : o.y < 2.0 / 3 ? "" : "bottom";
  if (*row && *col) return str_cat("at the ", row, " ", col);
  if (*row) return str_cat("at the ", row);
  if (*col) return str_cat("on the ", col);
  return "in the center";
}

int count(const Scene& s, int colour, int shape = -1) {
  int n = 0;
  for (const auto& o : s.objs) n += (colour < 0 || o.colour == colour) && (shape < 0 || o.shape == shape);
  return n;
}

/// The index of the only object with this shape and colour, or -1 when there is none or more than one.
int find_unique(const Scene& s, int shape, int colour) {
  int at = -1;
  for (size_t i = 0; i < s.objs.size(); ++i)
    if (s.objs[i].shape == shape && s.objs[i].colour == colour) {
      if (at >= 0) return -1;
      at = static_cast<int>(i);
    }
  return at;
}

/// Adds an object at a free random spot; false when none is found.
bool place(Scene& s, Rng& rng, int shape, int colour) {
  for (int attempt = 0; attempt < 400; ++attempt) {
    Obj o;
    o.shape = shape;
    o.colour = colour;
    o.r = rng.uniform_real(0.075, 0.1);
    o.x = rng.uniform_real(o.r + 0.03, 1 - o.r - 0.03);
    o.y = rng.uniform_real(o.r + 0.03, 1 - o.r - 0.03);
    bool free = true;
    for (const auto& p : s.objs) free = free && std::hypot(p.x - o.x, p.y - o.y) >= p.r + o.r + 0.05;
    if (free) {
      s.objs.push_back(o);
      return true;
    }
  }
  return false;
}

/// A shapes scene holding exactly `objs` (shape, colour) pairs; retries the layout until all fit.
Scene shapes_scene(Rng& rng, const std::vector<std::pair<int, int>>& objs) {
  for (;;) {
    Scene s;
    bool ok = true;
    for (const auto& [shape, colour] : objs) ok = ok && place(s, rng, shape, colour);
    if (ok) return s;
  }
}

std::pair<int, int> random_obj(Rng& rng, int colour = -1, int avoid_colour = -1) {
  int c = colour;
  while (c < 0 || c == avoid_colour) c = rng.uniform(0, kColours - 1);
  return {rng.uniform(0, kShapes - 1), c};
}

/// Objects whose (shape, colour) pairs are all different.
std::vector<std::pair<int, int>> distinct_objs(Rng& rng, int n) {
  std::vector<std::pair<int, int>> all;
  for (int s = 0; s < kShapes; ++s)
    for (int c = 0; c < kColours; ++c) all.emplace_back(s, c);
  rng.shuffle(all);
  all.resize(static_cast<size_t>(n));
  return all;
}

std::vector<int> distinct_colours(Rng& rng, int n) {
  std::vector<int> c = {0, 1, 2, 3};
  rng.shuffle(c);
  c.resize(static_cast<size_t>(n));
  return c;
}

Scene chart_scene(Rng& rng, int bars) {
  Scene s;
  s.type = SceneType::kChart;
  s.bar_colours = distinct_colours(rng, bars);
  for (int i = 0; i < bars; ++i) s.bar_values.push_back(rng.uniform(1, 9));
  return s;
}

/// A diagram of n nodes with distinct colours joined by n-1 arrows (a random tree, arrows pointing away from
/// its root), laid out around a circle.
Scene diagram_scene(Rng& rng, int n) {
  Scene s;
  s.type = SceneType::kDiagram;
  const auto colours = distinct_colours(rng, n);
  const double turn = rng.uniform_real(0, 2 * M_PI);
  for (int i = 0; i < n; ++i) {
    Obj o;
    o.shape = rng.uniform(0, kShapes - 1);
    o.colour = colours[static_cast<size_t>(i)];
    o.r = 0.085;
    const double a = turn + 2 * M_PI * i / n;
    o.x = 0.5 + 0.31 * std::cos(a) + rng.uniform_real(-0.03, 0.03);
    o.y = 0.5 + 0.31 * std::sin(a) + rng.uniform_real(-0.03, 0.03);
    s.objs.push_back(o);
  }
  std::vector<int> order(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  rng.shuffle(order);
  for (int i = 1; i < n; ++i) s.arrows.emplace_back(order[static_cast<size_t>(rng.uniform(0, i - 1))], order[static_cast<size_t>(i)]);
  return s;
}

int out_degree(const Scene& s, int node) {
  int n = 0;
  for (const auto& a : s.arrows) n += a.first == node;
  return n;
}
int in_degree(const Scene& s, int node) {
  int n = 0;
  for (const auto& a : s.arrows) n += a.second == node;
  return n;
}
int node_of_colour(const Scene& s, int colour) {
  for (size_t i = 0; i < s.objs.size(); ++i)
    if (s.objs[i].colour == colour) return static_cast<int>(i);
  return -1;
}

// ---------------------------------------------------------------------------------------------------------
// Drawing.

// Segmentation mask classes (`make-demo-data` writes masks/ beside images/): 0 background, then each shape in each
// colour (shapes and diagram nodes), each colour of bar, and the black strokes (arrows, axes). Grid lines and
// tick labels count as background.
constexpr int kMaskShapeBase = 1, kMaskBarBase = kMaskShapeBase + kShapes * kColours, kMaskStroke = kMaskBarBase + kColours;
constexpr int kMaskClasses = kMaskStroke + 1;

int mask_class(const Obj& o) { return kMaskShapeBase + o.shape * kColours + o.colour; }

/// Draws with the object's colour, or, on a mask (one 8-bit channel), with its mask class and no antialiasing.
void draw_obj(cv::Mat& img, const Obj& o, double side) {
  const cv::Point c(static_cast<int>(std::lround(o.x * side)), static_cast<int>(std::lround(o.y * side)));
  const int r = static_cast<int>(std::lround(o.r * side));
  const bool mask = img.channels() == 1;
  const cv::Scalar colour = mask ? cv::Scalar(mask_class(o)) : kColourBgr[static_cast<size_t>(o.colour)];
  const int aa = mask ? cv::LINE_8 : cv::LINE_AA;
  if (o.shape == 0) {
    cv::circle(img, c, r, colour, cv::FILLED, aa);
  } else if (o.shape == 1) {
    const int h = static_cast<int>(std::lround(o.r * side * 0.8));
    cv::rectangle(img, cv::Point(c.x - h, c.y - h), cv::Point(c.x + h, c.y + h), colour, cv::FILLED, aa);
  } else {
    const int dx = static_cast<int>(std::lround(o.r * side * 0.85)), dy = static_cast<int>(std::lround(o.r * side * 0.7));
    const std::array<cv::Point, 3> pts = {cv::Point(c.x, c.y - r), cv::Point(c.x - dx, c.y + dy), cv::Point(c.x + dx, c.y + dy)};
    cv::fillConvexPoly(img, pts.data(), 3, colour, aa);
  }
}

/// The scene as a BGR image, or (`mask`) as its segmentation mask: one 8-bit channel of mask classes.
cv::Mat draw(const Scene& s, int size, bool mask = false) {
  const double side = size;
  cv::Mat img = mask ? cv::Mat(size, size, CV_8UC1, cv::Scalar(0)) : cv::Mat(size, size, CV_8UC3, cv::Scalar(255, 255, 255));
  const int aa = mask ? cv::LINE_8 : cv::LINE_AA;
  const cv::Scalar ink = mask ? cv::Scalar(kMaskStroke) : cv::Scalar(0, 0, 0);
  auto px = [&](double v) { return static_cast<int>(std::lround(v * side)); };
  const int thin = std::max(1, size / 112);
  if (s.type == SceneType::kShapes) {
    for (const auto& o : s.objs) draw_obj(img, o, side);
  } else if (s.type == SceneType::kChart) {
    // Plot area: x in [0.14, 0.95], value v at y = 0.9 - 0.08 v (0 .. 10).
    auto y_of = [&](double v) { return px(0.9 - 0.08 * v); };
    if (!mask) {  // grid lines and tick labels: background in the mask
      for (int v = 1; v <= 9; ++v)
        cv::line(img, cv::Point(px(0.14), y_of(v)), cv::Point(px(0.95), y_of(v)), cv::Scalar(215, 215, 215), thin);
      const double scale = 0.28 * side / 112;
      for (int v : {0, 3, 6, 9})
        cv::putText(img, std::to_string(v), cv::Point(px(0.03), y_of(v) + px(0.025)), cv::FONT_HERSHEY_SIMPLEX, scale,
                    cv::Scalar(0, 0, 0), thin, cv::LINE_AA);
    }
    const size_t n = s.bar_values.size();
    const double slot = 0.79 / static_cast<double>(n);
    for (size_t i = 0; i < n; ++i) {
      const double x0 = 0.16 + slot * static_cast<double>(i) + slot * 0.15, x1 = x0 + slot * 0.7;
      cv::rectangle(img, cv::Point(px(x0), y_of(s.bar_values[i])), cv::Point(px(x1), y_of(0)),
                    mask ? cv::Scalar(kMaskBarBase + s.bar_colours[i]) : kColourBgr[static_cast<size_t>(s.bar_colours[i])],
                    cv::FILLED);
    }
    cv::line(img, cv::Point(px(0.14), y_of(0)), cv::Point(px(0.95), y_of(0)), ink, thin);
    cv::line(img, cv::Point(px(0.14), y_of(0)), cv::Point(px(0.14), y_of(10)), ink, thin);
  } else {
    for (const auto& [from, to] : s.arrows) {
      const Obj &a = s.objs[static_cast<size_t>(from)], &b = s.objs[static_cast<size_t>(to)];
      const double dx = b.x - a.x, dy = b.y - a.y, d = std::hypot(dx, dy);
      const double t0 = (a.r + 0.01) / d, t1 = 1 - (b.r + 0.02) / d;
      cv::arrowedLine(img, cv::Point(px(a.x + dx * t0), px(a.y + dy * t0)), cv::Point(px(a.x + dx * t1), px(a.y + dy * t1)),
                      ink, thin, aa, 0, 0.25);
    }
    for (const auto& o : s.objs) draw_obj(img, o, side);
  }
  return img;
}

std::string encode_png(const Scene& s, int size, bool mask = false) {
  std::vector<uchar> buf;
  LLAVACOT_CHECK(cv::imencode(".png", draw(s, size, mask), buf, {cv::IMWRITE_PNG_COMPRESSION, 6}), RuntimeError,
                 "could not encode a demo image as PNG");
  return std::string(buf.begin(), buf.end());
}

// ---------------------------------------------------------------------------------------------------------
// Captions: what the image shows, in the order a reader scans it.

std::string join_list(const std::vector<std::string>& items, const char* last = "and") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += items.size() == 2 ? str_cat(" ", last, " ") : i + 1 == items.size() ? str_cat(", ", last, " ") : ", ";
    out += items[i];
  }
  return out;
}

std::string plural(int n, const char* one, const char* many) { return str_cat(n, " ", n == 1 ? one : many); }

std::string caption(const Scene& s) {
  if (s.type == SceneType::kShapes) {
    std::vector<const Obj*> objs;
    for (const auto& o : s.objs) objs.push_back(&o);
    std::stable_sort(objs.begin(), objs.end(), [](const Obj* a, const Obj* b) { return a->x < b->x; });
    std::vector<std::string> items;
    for (const Obj* o : objs) items.push_back(str_cat("a ", obj_name(*o), " ", where(*o)));
    return str_cat("The image shows ", plural(static_cast<int>(objs.size()), "shape", "shapes"),
                   " on a white background", objs.size() == 1 ? ": " : ". From left to right: ", join_list(items), ".");
  }
  if (s.type == SceneType::kChart) {
    std::vector<std::string> items;
    for (size_t i = 0; i < s.bar_values.size(); ++i)
      items.push_back(str_cat("a ", kColourNames[static_cast<size_t>(s.bar_colours[i])], " bar of height ", s.bar_values[i]));
    return str_cat("The image is a bar chart with ", s.bar_values.size(), " bars. From left to right: ", join_list(items), ".");
  }
  std::vector<std::string> nodes, links;
  for (const auto& o : s.objs) nodes.push_back("a " + obj_name(o));
  for (const auto& [a, b] : s.arrows)
    links.push_back(str_cat(the(s.objs[static_cast<size_t>(a)]), " points to ", the(s.objs[static_cast<size_t>(b)])));
  return str_cat("The image is a diagram of ", s.objs.size(), " shapes joined by arrows: ", join_list(nodes),
                 ". The arrows: ", join_list(links, ";"), ".");
}

// ---------------------------------------------------------------------------------------------------------
// Questions. Each kind has a setup that picks the answer first (uniformly) and builds a scene that gives it,
// and a derive that computes the question, the answer and the four-stage text from a scene alone; derive on a
// perturbed scene gives a consistent but wrong candidate for the verification turns.

enum class Form { kNumber, kYesNo, kPhrase, kList };

struct Params {
  int variant = 0, c1 = -1, c2 = -1, s1 = -1, s2 = -1;
};

struct Qa {
  std::string kind;
  Form form = Form::kNumber;
  Scene scene;
  Params params;
  std::string question;
  std::string answer;       // canonical: "3", "yes", "the red circle", "blue <AND> red"
  std::string answer_text;  // as the conclusion of an open answer states it
  std::vector<std::string> distractors;
  std::string summary, caption, reasoning;
};

const std::vector<std::string> kKinds = {"count_colour", "count_total",   "exists",      "compare",
                                         "position",     "extreme",       "colours",     "chart_value",
                                         "chart_extreme", "chart_compare", "arithmetic",  "diagram_target",
                                         "diagram_count"};

Form form_of(const std::string& kind) {
  if (kind == "exists" || kind == "compare" || kind == "position" || kind == "chart_compare") return Form::kYesNo;
  if (kind == "extreme" || kind == "chart_extreme" || kind == "diagram_target") return Form::kPhrase;
  if (kind == "colours") return Form::kList;
  return Form::kNumber;
}

std::vector<std::string> number_distractors(Rng& rng, int answer, int lo, int hi) {
  std::vector<std::string> out;
  std::vector<int> pool;
  for (int v = lo; v <= hi; ++v)
    if (v != answer) pool.push_back(v);
  rng.shuffle(pool);
  for (int v : pool) out.push_back(std::to_string(v));  // make_options takes what it needs
  return out;
}

const char* yes_no(bool v) { return v ? "yes" : "no"; }

/// Fills the question and the answer of `q` (whose kind, params and scene are set) from the scene. Returns false
/// when the question does not apply to this scene (a referenced object is gone or not unique).
bool derive(Qa& q, Rng& rng) {
  const Scene& s = q.scene;
  const Params& p = q.params;
  q.form = form_of(q.kind);
  q.caption = caption(s);
  q.distractors.clear();
  if (q.kind == "count_colour") {
    const int n = count(s, p.c1);
    const char* c = kColourNames[static_cast<size_t>(p.c1)];
    q.question = str_cat("How many ", c, " shapes are there in the image?");
    q.summary = str_cat("I will find the ", c, " shapes in the image and count them.");
    std::vector<std::string> found;
    for (const auto& o : s.objs)
      if (o.colour == p.c1) found.push_back(the(o));
    q.reasoning = found.empty() ? str_cat("None of the shapes is ", c, ", so the count is 0.")
                                : str_cat("The ", c, " shapes are ", join_list(found), ". Counting them gives ", n, ".");
    q.answer = std::to_string(n);
    q.distractors = number_distractors(rng, n, 0, 4);
  } else if (q.kind == "count_total") {
    const int n = count(s, -1);
    q.question = "How many shapes are there in the image?";
    q.summary = "I will count every shape in the image.";
    q.reasoning = str_cat("Counting the shapes listed from left to right gives ", n, ".");
    q.answer = std::to_string(n);
    q.distractors = number_distractors(rng, n, 1, kMaxObjects);
  } else if (q.kind == "exists") {
    const bool there = count(s, p.c1, p.s1) > 0;
    const char* c = kColourNames[static_cast<size_t>(p.c1)];
    const char* shape = kShapeNames[static_cast<size_t>(p.s1)];
    const std::string name = str_cat(c, " ", shape);
    q.question = str_cat("Is there a ", name, " in the image?");
    q.summary = str_cat("I will look for a ", name, " among the shapes.");
    // Colour first, as count_colour does, then the shape within that short list: each step compares one word.
    std::vector<std::string> same_colour;
    for (const auto& o : s.objs)
      if (o.colour == p.c1) same_colour.push_back(the(o));
    if (same_colour.empty())
      q.reasoning = str_cat("None of the shapes is ", c, ", so there is no ", name, " and the answer is no.");
    else
      q.reasoning = str_cat("The ", c, " shapes are ", join_list(same_colour), ". ",
                            there ? str_cat("One of them is a ", shape, ", so the answer is yes.")
                                  : str_cat("None of them is a ", shape, ", so the answer is no."));
    q.answer = yes_no(there);
  } else if (q.kind == "compare") {
    const int n1 = count(s, p.c1), n2 = count(s, p.c2);
    const char *a = kColourNames[static_cast<size_t>(p.c1)], *b = kColourNames[static_cast<size_t>(p.c2)];
    q.question = str_cat("Are there more ", a, " shapes than ", b, " shapes?");
    q.summary = str_cat("I will count the ", a, " shapes and the ", b, " shapes and compare the counts.");
    const char* rel = n1 > n2 ? "more than" : n1 == n2 ? "the same as" : "fewer than";
    q.reasoning = str_cat(n1 == 1 ? "There is " : "There are ",
                          plural(n1, (std::string(a) + " shape").c_str(), (std::string(a) + " shapes").c_str()),
                          " and ", plural(n2, (std::string(b) + " shape").c_str(), (std::string(b) + " shapes").c_str()), ". ",
                          n1, " is ", rel, " ", n2, ", so the answer is ", yes_no(n1 > n2), ".");
    q.answer = yes_no(n1 > n2);
  } else if (q.kind == "position") {
    const int i = find_unique(s, p.s1, p.c1), j = find_unique(s, p.s2, p.c2);
    if (i < 0 || j < 0 || i == j) return false;
    const Obj &a = s.objs[static_cast<size_t>(i)], &b = s.objs[static_cast<size_t>(j)];
    const bool horizontal = p.variant == 0;
    const double da = horizontal ? a.x : a.y, db = horizontal ? b.x : b.y;
    if (std::abs(da - db) < 0.06) return false;  // too close to call
    const char* rel = horizontal ? "to the left of" : "above";
    q.question = str_cat("Is ", the(a), " ", rel, " ", the(b), "?");
    q.summary = str_cat("I will locate ", the(a), " and ", the(b), " and compare their positions.");
    const bool yes = da < db;
    q.reasoning = str_cat(char(std::toupper(the(a)[0])), the(a).substr(1), " is ", where(a), " and ", the(b), " is ", where(b), "; ",
                          the(a), " is ", horizontal ? (yes ? "further left" : "further right") : (yes ? "higher" : "lower"),
                          ", so the answer is ", yes_no(yes), ".");
    q.answer = yes_no(yes);
  } else if (q.kind == "extreme") {
    static const std::array<const char*, 4> kWords = {"furthest to the left", "furthest to the right", "highest", "lowest"};
    auto key = [&](const Obj& o) { return p.variant == 0 ? o.x : p.variant == 1 ? -o.x : p.variant == 2 ? o.y : -o.y; };
    if (s.objs.size() < 2) return false;
    std::vector<const Obj*> objs;
    for (const auto& o : s.objs) objs.push_back(&o);
    std::sort(objs.begin(), objs.end(), [&](const Obj* a, const Obj* b) { return key(*a) < key(*b); });
    if (key(*objs[1]) - key(*objs[0]) < 0.06) return false;
    q.question = str_cat("Which shape is ", kWords[static_cast<size_t>(p.variant)], "?");
    q.summary = str_cat("I will compare the positions of the shapes to find the one ", kWords[static_cast<size_t>(p.variant)], ".");
    q.reasoning = str_cat("Of the shapes, ", the(*objs[0]), " ", where(*objs[0]), " is ", kWords[static_cast<size_t>(p.variant)],
                          "; the next one, ", the(*objs[1]), ", is clearly further in.");
    q.answer = the(*objs[0]);
    for (size_t k = 1; k < objs.size(); ++k) q.distractors.push_back(the(*objs[k]));
  } else if (q.kind == "colours") {
    std::vector<std::string> present;
    for (int c = 0; c < kColours; ++c)
      if (count(s, c) > 0) present.push_back(kColourNames[static_cast<size_t>(c)]);
    q.question = "Which colours do the shapes in the image have?";
    q.summary = "I will note the colour of every shape and list the different colours.";
    q.reasoning = str_cat("Going through the shapes, the colours that appear are ", join_list(present), ".");
    q.answer.clear();
    for (size_t k = 0; k < present.size(); ++k) q.answer += (k ? " <AND> " : "") + present[k];
    q.answer_text = join_list(present);
    return true;
  } else if (q.kind == "chart_value") {
    const auto it = std::find(s.bar_colours.begin(), s.bar_colours.end(), p.c1);
    if (it == s.bar_colours.end()) return false;
    const int v = s.bar_values[static_cast<size_t>(it - s.bar_colours.begin())];
    const char* c = kColourNames[static_cast<size_t>(p.c1)];
    q.question = str_cat("What is the height of the ", c, " bar?");
    q.summary = str_cat("I will find the ", c, " bar and read its height against the grid lines.");
    q.reasoning = str_cat("The top of the ", c, " bar is level with grid line ", v, ", so its height is ", v, ".");
    q.answer = std::to_string(v);
    q.distractors = number_distractors(rng, v, 1, 9);
  } else if (q.kind == "chart_extreme") {
    const bool tallest = p.variant == 0;
    std::vector<size_t> order(s.bar_values.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return tallest ? s.bar_values[a] > s.bar_values[b] : s.bar_values[a] < s.bar_values[b];
    });
    if (order.size() < 2 || s.bar_values[order[0]] == s.bar_values[order[1]]) return false;
    auto bar = [&](size_t k) { return str_cat("the ", kColourNames[static_cast<size_t>(s.bar_colours[k])], " bar"); };
    q.question = str_cat("Which bar is the ", tallest ? "tallest" : "shortest", "?");
    q.summary = str_cat("I will compare the heights of the bars to find the ", tallest ? "tallest" : "shortest", " one.");
    q.reasoning = str_cat(char(std::toupper(bar(order[0])[0])), bar(order[0]).substr(1), " has height ", s.bar_values[order[0]],
                          ", ", tallest ? "more" : "less", " than any other bar (the next is ", bar(order[1]), " at ",
                          s.bar_values[order[1]], ").");
    q.answer = bar(order[0]);
    for (size_t k = 1; k < order.size(); ++k) q.distractors.push_back(bar(order[k]));
    for (int c = 0; c < kColours && q.distractors.size() < 3; ++c)
      if (std::find(s.bar_colours.begin(), s.bar_colours.end(), c) == s.bar_colours.end())
        q.distractors.push_back(str_cat("the ", kColourNames[static_cast<size_t>(c)], " bar"));
  } else if (q.kind == "chart_compare") {
    const auto a = std::find(s.bar_colours.begin(), s.bar_colours.end(), p.c1);
    const auto b = std::find(s.bar_colours.begin(), s.bar_colours.end(), p.c2);
    if (a == s.bar_colours.end() || b == s.bar_colours.end() || a == b) return false;
    const int va = s.bar_values[static_cast<size_t>(a - s.bar_colours.begin())];
    const int vb = s.bar_values[static_cast<size_t>(b - s.bar_colours.begin())];
    const char *ca = kColourNames[static_cast<size_t>(p.c1)], *cb = kColourNames[static_cast<size_t>(p.c2)];
    q.question = str_cat("Is the ", ca, " bar taller than the ", cb, " bar?");
    q.summary = str_cat("I will read the heights of the ", ca, " bar and the ", cb, " bar and compare them.");
    q.reasoning = str_cat("The ", ca, " bar has height ", va, " and the ", cb, " bar has height ", vb, ". ", va, " is ",
                          va > vb ? "greater than" : va == vb ? "equal to" : "less than", " ", vb, ", so the answer is ",
                          yes_no(va > vb), ".");
    q.answer = yes_no(va > vb);
  } else if (q.kind == "arithmetic") {
    int v = 0;
    if (p.variant == 0) {  // shapes of two kinds in total
      const int n1 = count(s, -1, p.s1), n2 = count(s, -1, p.s2);
      v = n1 + n2;
      q.question = str_cat("How many ", kShapePlurals[static_cast<size_t>(p.s1)], " and ", kShapePlurals[static_cast<size_t>(p.s2)],
                           " are there in total?");
      q.summary = str_cat("I will count the ", kShapePlurals[static_cast<size_t>(p.s1)], " and the ",
                          kShapePlurals[static_cast<size_t>(p.s2)], " and add the two counts.");
      q.reasoning = str_cat(n1 == 1 ? "There is " : "There are ", plural(n1, kShapeNames[static_cast<size_t>(p.s1)], kShapePlurals[static_cast<size_t>(p.s1)]),
                            " and ", plural(n2, kShapeNames[static_cast<size_t>(p.s2)], kShapePlurals[static_cast<size_t>(p.s2)]),
                            ". ", n1, " + ", n2, " = ", v, ".");
      q.distractors = number_distractors(rng, v, 0, kMaxObjects);
    } else if (p.variant == 1) {  // difference of two colour counts
      const int n1 = count(s, p.c1), n2 = count(s, p.c2);
      if (n1 < n2) return false;
      v = n1 - n2;
      const char *a = kColourNames[static_cast<size_t>(p.c1)], *b = kColourNames[static_cast<size_t>(p.c2)];
      q.question = str_cat("How many more ", a, " shapes than ", b, " shapes are there?");
      q.summary = str_cat("I will count the ", a, " shapes and the ", b, " shapes and subtract.");
      q.reasoning = str_cat(n1 == 1 ? "There is " : "There are ",
                            plural(n1, (std::string(a) + " shape").c_str(), (std::string(a) + " shapes").c_str()), " and ",
                            plural(n2, (std::string(b) + " shape").c_str(), (std::string(b) + " shapes").c_str()), ". ", n1,
                            " - ", n2, " = ", v, ".");
      q.distractors = number_distractors(rng, v, 0, 4);
    } else {  // sum of two bars
      const auto a = std::find(s.bar_colours.begin(), s.bar_colours.end(), p.c1);
      const auto b = std::find(s.bar_colours.begin(), s.bar_colours.end(), p.c2);
      if (a == s.bar_colours.end() || b == s.bar_colours.end() || a == b) return false;
      const int va = s.bar_values[static_cast<size_t>(a - s.bar_colours.begin())];
      const int vb = s.bar_values[static_cast<size_t>(b - s.bar_colours.begin())];
      v = va + vb;
      const char *ca = kColourNames[static_cast<size_t>(p.c1)], *cb = kColourNames[static_cast<size_t>(p.c2)];
      q.question = str_cat("What is the sum of the heights of the ", ca, " bar and the ", cb, " bar?");
      q.summary = str_cat("I will read the heights of the ", ca, " bar and the ", cb, " bar and add them.");
      q.reasoning = str_cat("The ", ca, " bar has height ", va, " and the ", cb, " bar has height ", vb, ". ", va, " + ", vb, " = ", v, ".");
      q.distractors = number_distractors(rng, v, 2, 18);
    }
    q.answer = std::to_string(v);
  } else if (q.kind == "diagram_target") {
    const int from = node_of_colour(s, p.c1);
    if (from < 0 || out_degree(s, from) != 1) return false;
    int to = -1;
    for (const auto& a : s.arrows)
      if (a.first == from) to = a.second;
    const Obj &f = s.objs[static_cast<size_t>(from)], &t = s.objs[static_cast<size_t>(to)];
    q.question = str_cat("In the diagram, what does the arrow from ", the(f), " point to?");
    q.summary = str_cat("I will follow the arrow that starts at ", the(f), " to the shape it reaches.");
    q.reasoning = str_cat("The only arrow leaving ", the(f), " ends at ", the(t), ".");
    q.answer = the(t);
    for (size_t k = 0; k < s.objs.size(); ++k)
      if (static_cast<int>(k) != to) q.distractors.push_back(the(s.objs[k]));
  } else if (q.kind == "diagram_count") {
    const int node = node_of_colour(s, p.c1);
    if (node < 0) return false;
    const int n = out_degree(s, node);
    const Obj& o = s.objs[static_cast<size_t>(node)];
    std::vector<std::string> ends;
    for (const auto& a : s.arrows)
      if (a.first == node) ends.push_back(the(s.objs[static_cast<size_t>(a.second)]));
    q.question = str_cat("In the diagram, how many arrows start at ", the(o), "?");
    q.summary = str_cat("I will find ", the(o), " and count the arrows leaving it.");
    q.reasoning = n == 0 ? str_cat("Every arrow at ", the(o), " points into it; none leaves it, so the count is 0.")
                         : str_cat("Arrows leave ", the(o), " towards ", join_list(ends), ", so the count is ", n, ".");
    if (n == 0 && in_degree(s, node) == 0) q.reasoning = str_cat("None of the arrows leaves ", the(o), ", so the count is 0.");
    q.answer = std::to_string(n);
    q.distractors = number_distractors(rng, n, 0, 3);
  } else {
    throw UsageError(str_cat("unknown demo question kind '", q.kind, "'"));
  }
  q.answer_text = q.answer;
  return true;
}

/// Builds a scene and parameters for `kind` whose answer was drawn uniformly first (spec/demo.md: a model
/// that ignores the image must sit at chance), then derives the question from the scene.
Qa setup(const std::string& kind, Rng& rng) {
  for (;;) {
    Qa q;
    q.kind = kind;
    Params& p = q.params;
    if (kind == "count_colour") {
      p.c1 = rng.uniform(0, kColours - 1);
      const int n = rng.uniform(0, 4), others = rng.uniform(n == 0 ? 1 : 0, kMaxObjects - n);
      std::vector<std::pair<int, int>> objs;
      for (int i = 0; i < n; ++i) objs.push_back(random_obj(rng, p.c1));
      for (int i = 0; i < others; ++i) objs.push_back(random_obj(rng, -1, p.c1));
      q.scene = shapes_scene(rng, objs);
    } else if (kind == "count_total") {
      const int n = rng.uniform(1, kMaxObjects);
      std::vector<std::pair<int, int>> objs;
      for (int i = 0; i < n; ++i) objs.push_back(random_obj(rng));
      q.scene = shapes_scene(rng, objs);
    } else if (kind == "exists") {
      const auto target = random_obj(rng);
      p.s1 = target.first;
      p.c1 = target.second;
      const bool yes = rng.chance(0.5);
      std::vector<std::pair<int, int>> objs;
      if (yes) objs.push_back(target);
      const int n = rng.uniform(yes ? 0 : 1, 4);
      for (int i = 0; i < n; ++i) {
        auto o = random_obj(rng);
        // Near misses (same colour or same shape) make the question need both attributes.
        if (rng.chance(0.5)) o = rng.chance(0.5) ? std::make_pair(o.first, p.c1) : std::make_pair(p.s1, o.second);
        if (o == target) continue;
        objs.push_back(o);
      }
      if (objs.empty()) continue;
      q.scene = shapes_scene(rng, objs);
    } else if (kind == "compare") {
      const auto cs = distinct_colours(rng, 3);
      p.c1 = cs[0];
      p.c2 = cs[1];
      const bool yes = rng.chance(0.5);
      int n1 = 0, n2 = 0;
      do {
        n1 = rng.uniform(0, 4);
        n2 = rng.uniform(0, 4);
      } while ((n1 > n2) != yes || n1 + n2 > kMaxObjects);
      std::vector<std::pair<int, int>> objs;
      for (int i = 0; i < n1; ++i) objs.push_back(random_obj(rng, p.c1));
      for (int i = 0; i < n2; ++i) objs.push_back(random_obj(rng, p.c2));
      if (objs.empty() || (static_cast<int>(objs.size()) < kMaxObjects && rng.chance(0.3))) objs.push_back(random_obj(rng, cs[2]));
      q.scene = shapes_scene(rng, objs);
    } else if (kind == "position") {
      const auto objs = distinct_objs(rng, rng.uniform(2, 5));
      q.scene = shapes_scene(rng, objs);
      p.variant = rng.uniform(0, 1);
      p.s1 = objs[0].first;
      p.c1 = objs[0].second;
      p.s2 = objs[1].first;
      p.c2 = objs[1].second;
      // Balance: make the answer yes or no with equal chance by choosing the order of the pair.
      const Obj &a = q.scene.objs[0], &b = q.scene.objs[1];
      const bool a_first = p.variant == 0 ? a.x < b.x : a.y < b.y;
      if (a_first != rng.chance(0.5)) {
        std::swap(p.s1, p.s2);
        std::swap(p.c1, p.c2);
      }
    } else if (kind == "extreme") {
      q.scene = shapes_scene(rng, distinct_objs(rng, rng.uniform(4, 5)));
      p.variant = rng.uniform(0, 3);
    } else if (kind == "colours") {
      const int n = rng.uniform(1, kMaxObjects);
      std::vector<std::pair<int, int>> objs;
      for (int i = 0; i < n; ++i) objs.push_back(random_obj(rng));
      q.scene = shapes_scene(rng, objs);
    } else if (kind == "chart_value") {
      q.scene = chart_scene(rng, rng.uniform(3, 4));
      const size_t k = static_cast<size_t>(rng.uniform(0, static_cast<int>(q.scene.bar_values.size()) - 1));
      p.c1 = q.scene.bar_colours[k];
      q.scene.bar_values[k] = rng.uniform(1, 9);
    } else if (kind == "chart_extreme") {
      q.scene = chart_scene(rng, rng.uniform(3, 4));
      p.variant = rng.uniform(0, 1);
    } else if (kind == "chart_compare") {
      q.scene = chart_scene(rng, rng.uniform(3, 4));
      const size_t a = 0, b = 1 + static_cast<size_t>(rng.uniform(0, static_cast<int>(q.scene.bar_values.size()) - 2));
      const bool yes = rng.chance(0.5);
      int va = 0, vb = 0;
      do {
        va = rng.uniform(1, 9);
        vb = rng.uniform(1, 9);
      } while ((va > vb) != yes);
      q.scene.bar_values[a] = va;
      q.scene.bar_values[b] = vb;
      p.c1 = q.scene.bar_colours[a];
      p.c2 = q.scene.bar_colours[b];
      // The pair's left-right order must not give the answer away.
      if (rng.chance(0.5)) {
        std::swap(q.scene.bar_colours[a], q.scene.bar_colours[b]);
        std::swap(q.scene.bar_values[a], q.scene.bar_values[b]);
      }
    } else if (kind == "arithmetic") {
      p.variant = rng.uniform(0, 2);
      if (p.variant == 0) {
        p.s1 = rng.uniform(0, 2);
        p.s2 = (p.s1 + rng.uniform(1, 2)) % 3;
        const int total = rng.uniform(0, kMaxObjects), n1 = rng.uniform(0, total), n2 = total - n1;
        std::vector<std::pair<int, int>> objs;
        for (int i = 0; i < n1; ++i) objs.emplace_back(p.s1, rng.uniform(0, kColours - 1));
        for (int i = 0; i < n2; ++i) objs.emplace_back(p.s2, rng.uniform(0, kColours - 1));
        const int third = 3 - p.s1 - p.s2, extra = rng.uniform(total == 0 ? 1 : 0, std::min(2, std::max(total == 0 ? 1 : 0, kMaxObjects - total)));
        for (int i = 0; i < extra; ++i) objs.emplace_back(third, rng.uniform(0, kColours - 1));
        q.scene = shapes_scene(rng, objs);
      } else if (p.variant == 1) {
        const auto cs = distinct_colours(rng, 3);
        p.c1 = cs[0];
        p.c2 = cs[1];
        const int d = rng.uniform(0, 4), n2 = rng.uniform(0, std::min(2, (kMaxObjects - d) / 2));
        std::vector<std::pair<int, int>> objs;
        for (int i = 0; i < n2 + d; ++i) objs.push_back(random_obj(rng, p.c1));
        for (int i = 0; i < n2; ++i) objs.push_back(random_obj(rng, p.c2));
        if (objs.empty() || (static_cast<int>(objs.size()) < kMaxObjects && rng.chance(0.3))) objs.push_back(random_obj(rng, cs[2]));
        q.scene = shapes_scene(rng, objs);
      } else {
        q.scene = chart_scene(rng, rng.uniform(3, 4));
        const int sum = rng.uniform(2, 18);
        const int va = rng.uniform(std::max(1, sum - 9), std::min(9, sum - 1));
        q.scene.bar_values[0] = va;
        q.scene.bar_values[1] = sum - va;
        p.c1 = q.scene.bar_colours[0];
        p.c2 = q.scene.bar_colours[1];
        if (rng.chance(0.5)) std::swap(p.c1, p.c2);
        // Shuffle the bars so the pair is anywhere in the chart.
        std::vector<size_t> order(q.scene.bar_values.size());
        for (size_t k = 0; k < order.size(); ++k) order[k] = k;
        rng.shuffle(order);
        Scene shuffled = q.scene;
        for (size_t k = 0; k < order.size(); ++k) {
          shuffled.bar_colours[k] = q.scene.bar_colours[order[k]];
          shuffled.bar_values[k] = q.scene.bar_values[order[k]];
        }
        q.scene = shuffled;
      }
    } else if (kind == "diagram_target") {
      q.scene = diagram_scene(rng, 4);
      // Pick a node with exactly one outgoing arrow.
      std::vector<int> candidates;
      for (int i = 0; i < 4; ++i)
        if (out_degree(q.scene, i) == 1) candidates.push_back(i);
      if (candidates.empty()) continue;
      p.c1 = q.scene.objs[static_cast<size_t>(rng.pick(candidates))].colour;
    } else if (kind == "diagram_count") {
      const int want = rng.uniform(0, 2);
      q.scene = diagram_scene(rng, 4);
      std::vector<int> candidates;
      for (int i = 0; i < 4; ++i)
        if (out_degree(q.scene, i) == want) candidates.push_back(i);
      if (candidates.empty()) continue;
      p.c1 = q.scene.objs[static_cast<size_t>(rng.pick(candidates))].colour;
    } else {
      throw UsageError(str_cat("unknown demo question kind '", kind, "'"));
    }
    if (derive(q, rng)) return q;
  }
}

/// A small change to the scene (recolour, remove, add or reshape an object; change a bar; redirect an arrow).
Scene perturb(const Scene& s, Rng& rng) {
  Scene t = s;
  if (s.type == SceneType::kShapes) {
    auto& o = t.objs[static_cast<size_t>(rng.uniform(0, static_cast<int>(t.objs.size()) - 1))];
    switch (rng.uniform(0, 3)) {
      case 0: o.colour = (o.colour + rng.uniform(1, kColours - 1)) % kColours; break;
      case 1: o.shape = (o.shape + rng.uniform(1, kShapes - 1)) % kShapes; break;
      case 2:
        if (t.objs.size() > 1) t.objs.erase(t.objs.begin() + (&o - t.objs.data()));
        break;
      default: place(t, rng, rng.uniform(0, kShapes - 1), rng.uniform(0, kColours - 1)); break;
    }
  } else if (s.type == SceneType::kChart) {
    auto& v = t.bar_values[static_cast<size_t>(rng.uniform(0, static_cast<int>(t.bar_values.size()) - 1))];
    v = 1 + (v - 1 + rng.uniform(1, 8)) % 9;
  } else {
    auto& a = t.arrows[static_cast<size_t>(rng.uniform(0, static_cast<int>(t.arrows.size()) - 1))];
    if (rng.chance(0.5)) {
      std::swap(a.first, a.second);
    } else {
      int to = a.second;
      while (to == a.second || to == a.first) to = rng.uniform(0, static_cast<int>(t.objs.size()) - 1);
      a.second = to;
    }
  }
  return t;
}

/// A derive of the same question on a perturbed scene whose answer differs; false when none is found.
bool wrong_candidate(const Qa& q, Rng& rng, Qa& out) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    Qa w = q;
    w.scene = perturb(q.scene, rng);
    if (derive(w, rng) && w.answer != q.answer) {
      out = w;
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Rendering a question as a benchmark would ask it, and the four-stage answer.

enum class Style { kMcq, kMathFree, kMathChoice, kYesNo, kOpen };

struct Option {
  std::vector<std::string> texts;  // A, B, C, D
  int correct = 0;
};

/// Options whose texts are never inside one another ("2" and "12"), so that an answer giving the right option's text
/// names exactly one option (VLMEvalKit's can_infer_text).
Option make_options(const Qa& q, Rng& rng, int n = 4) {
  Option o;
  std::vector<std::string> pool = q.distractors, wrong;
  rng.shuffle(pool);
  auto nested = [](const std::string& a, const std::string& b) { return a.find(b) != std::string::npos || b.find(a) != std::string::npos; };
  for (const auto& d : pool) {
    if (static_cast<int>(wrong.size()) == n - 1) break;
    bool ok = !nested(d, q.answer);
    for (const auto& w : wrong) ok = ok && !nested(d, w);
    if (ok) wrong.push_back(d);
  }
  o.correct = rng.uniform(0, static_cast<int>(wrong.size()));
  o.texts = wrong;
  o.texts.insert(o.texts.begin() + o.correct, q.answer);
  return o;
}

char letter(int i) { return static_cast<char>('A' + i); }

/// The ImageMCQDataset prompt (benchmarks spec §1.2).
std::string mcq_prompt(const std::string& question, const std::vector<std::string>& options, const std::string& hint) {
  std::string out;
  if (!hint.empty()) out += "Hint: " + hint + "\n";
  out += "Question: " + question + "\n";
  if (!options.empty()) {
    out += "Options:\n";
    for (size_t i = 0; i < options.size(); ++i) out += str_cat(letter(static_cast<int>(i)), ". ", options[i], "\n");
    out += "Please select the correct answer from the options above. \n";
  }
  return out;
}

/// MathVista's query text: the hint line, the question, and the choices of a multiple-choice item.
std::string mathvista_query(const std::string& question, const std::vector<std::string>& choices) {
  if (choices.empty())
    return "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, "
           "at the end.\nQuestion: " + question;
  std::string out = "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the "
                    "end.\nQuestion: " + question + "\nChoices:";
  for (size_t i = 0; i < choices.size(); ++i) out += str_cat("\n(", letter(static_cast<int>(i)), ") ", choices[i]);
  return out;
}

struct Rendered {
  std::string prompt;      // the human turn
  std::string answer;      // the four stages
  std::string conclusion;
  Option options;
  std::string hint;
};

std::string stages(const std::string& summary, const std::string& caption, const std::string& reasoning,
                   const std::string& conclusion) {
  return str_cat("<SUMMARY> ", summary, " </SUMMARY>\n\n<CAPTION> ", caption, " </CAPTION>\n\n<REASONING> ", reasoning,
                 " </REASONING>\n\n<CONCLUSION> ", conclusion, " </CONCLUSION>");
}

std::string capitalise(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

/// The hint line of an MMBench-style question about a scene of this type.
std::string mmbench_hint(SceneType t) {
  return t == SceneType::kChart ? "The bars stand on a grid with one line per unit." : "The shapes are drawn on a white background.";
}

Rendered render(const Qa& q, Style style, Rng& rng, const std::string& hint = "", int n_options = 4) {
  Rendered r;
  r.hint = hint;
  switch (style) {
    case Style::kMcq:
      r.options = make_options(q, rng, n_options);
      r.prompt = mcq_prompt(q.question, r.options.texts, hint);
      r.conclusion = capitalise(q.answer_text);
      break;
    case Style::kMathFree:
      r.prompt = mathvista_query(q.question, {});
      r.conclusion = q.answer;
      break;
    case Style::kMathChoice:
      r.options = make_options(q, rng);
      r.prompt = mathvista_query(q.question, r.options.texts);
      r.conclusion = capitalise(q.answer_text);
      break;
    case Style::kYesNo:
      r.prompt = q.question;
      r.conclusion = capitalise(q.answer);
      break;
    case Style::kOpen:
      r.prompt = q.question;
      r.conclusion = capitalise(q.answer_text);
      break;
  }
  r.answer = stages(q.summary, q.caption, q.reasoning, r.conclusion);
  return r;
}

std::vector<Style> styles_for(Form form) {
  switch (form) {
    case Form::kNumber: return {Style::kMcq, Style::kMathFree, Style::kMathChoice, Style::kOpen};
    case Form::kYesNo: return {Style::kYesNo};
    case Form::kPhrase: return {Style::kMcq, Style::kOpen};
    case Form::kList: return {Style::kOpen};
  }
  return {};
}

SceneType scene_type_of(const std::string& kind) {
  if (kind.rfind("chart", 0) == 0) return SceneType::kChart;
  if (kind.rfind("diagram", 0) == 0) return SceneType::kDiagram;
  return SceneType::kShapes;
}

/// A yes/no question about an existing scene with a yes/no choice of target (the second turn of a multi-turn
/// record, the second question of a HallusionBench set).
Qa ask_yes_no(const Scene& s, Rng& rng) {
  for (;;) {
    Qa q;
    q.scene = s;
    if (s.type == SceneType::kChart) {
      q.kind = "chart_compare";
      const auto cs = s.bar_colours;
      const int a = rng.uniform(0, static_cast<int>(cs.size()) - 1);
      int b = a;
      while (b == a) b = rng.uniform(0, static_cast<int>(cs.size()) - 1);
      q.params.c1 = cs[static_cast<size_t>(a)];
      q.params.c2 = cs[static_cast<size_t>(b)];
    } else {
      q.kind = "exists";
      std::pair<int, int> target;
      if (rng.chance(0.5)) {
        const auto& o = s.objs[static_cast<size_t>(rng.uniform(0, static_cast<int>(s.objs.size()) - 1))];
        target = {o.shape, o.colour};
      } else {
        do target = random_obj(rng);
        while (count(s, target.second, target.first) > 0);
      }
      q.params.s1 = target.first;
      q.params.c1 = target.second;
    }
    if (derive(q, rng)) return q;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Training records.

using Json = nlohmann::ordered_json;

struct TrainItem {
  std::string line;       // the JSON line
  std::vector<std::string> texts;  // the turns' text (the tokenizer's corpus)
  std::string image_rel;  // image path under images/
  std::string png, mask_png;  // the image and its segmentation mask
  std::string kind;
  bool verification = false, multi_turn = false;
};

const char* scene_folder(SceneType t) {
  return t == SceneType::kShapes ? "shapes" : t == SceneType::kChart ? "charts" : "diagrams";
}

TrainItem train_item(const DemoOptions& o, int64_t index) {
  Rng rng(stream_seed(o.seed, 1, static_cast<uint64_t>(index)));
  TrainItem item;
  item.verification = rng.chance(o.verify_fraction);
  std::string kind = rng.pick(kKinds);
  if (item.verification && kind == "colours") kind = "count_total";
  Qa q = setup(kind, rng);
  Json conv = Json::array();
  if (item.verification) {
    // Half correct; half a consistent answer to a slightly different scene, or a slip in the last step.
    const bool correct = rng.chance(0.5);
    Qa cand = q;
    if (!correct && !wrong_candidate(q, rng, cand)) {
      cand.answer = q.distractors.empty() ? (q.answer == "yes" ? "no" : "yes") : q.distractors.front();
      cand.answer_text = cand.answer;
      const size_t at = cand.reasoning.rfind(q.answer);
      cand.reasoning = at == std::string::npos ? cand.reasoning + " So the answer is " + cand.answer + "."
                                               : cand.reasoning.replace(at, q.answer.size(), cand.answer);
    }
    const std::string full = stages(cand.summary, cand.caption, cand.reasoning, capitalise(cand.answer_text));
    const std::string candidate = full.substr(0, full.find("\n\n<CONCLUSION>"));
    std::string reasoning;
    if (correct) {
      reasoning = str_cat("The candidate's caption matches the image and its reasoning follows from it, giving ",
                          cand.answer_text, ", which is right.");
    } else if (cand.caption != q.caption) {
      reasoning = str_cat("The candidate's caption does not match the image, so its reasoning reaches ", cand.answer,
                          " where the image gives ", q.answer, ".");
    } else {
      reasoning = str_cat("The caption matches the image, but the reasoning reaches ", cand.answer, " where the image gives ",
                          q.answer, ".");
    }
    conv.push_back({{"from", "human"}, {"value", verification_prompt(q.question, candidate)}});
    conv.push_back({{"from", "gpt"},
                    {"value", stages("I will compare the candidate answer with the image and check each step.", q.caption,
                                     reasoning, correct ? "correct" : "incorrect")}});
    item.kind = "verify";
  } else {
    // Multiple-choice prompts as MMBench's too: some with a hint line, some with three options.
    const Style style = rng.pick(styles_for(q.form));
    const bool mcq = style == Style::kMcq;
    const std::string hint = mcq && rng.chance(o.hint_fraction) ? mmbench_hint(q.scene.type) : "";
    const Rendered r = render(q, style, rng, hint, mcq && rng.chance(o.three_option_fraction) ? 3 : 4);
    const bool image_first = rng.chance(0.5);
    conv.push_back({{"from", "human"}, {"value", image_first ? "<image>\n" + r.prompt : r.prompt}});
    conv.push_back({{"from", "gpt"}, {"value", r.answer}});
    if (q.scene.type != SceneType::kDiagram && rng.chance(o.multi_turn_fraction)) {
      const Qa second = ask_yes_no(q.scene, rng);
      const Rendered r2 = render(second, Style::kYesNo, rng);
      conv.push_back({{"from", "human"}, {"value", r2.prompt}});
      conv.push_back({{"from", "gpt"}, {"value", r2.answer}});
      item.multi_turn = true;
    }
    item.kind = q.kind;
  }
  char name[32];
  std::snprintf(name, sizeof name, "%06lld", static_cast<long long>(index));
  item.image_rel = str_cat(scene_folder(q.scene.type), "/", name, ".png");
  item.png = encode_png(q.scene, static_cast<int>(o.image_size));
  item.mask_png = encode_png(q.scene, static_cast<int>(o.image_size), /*mask=*/true);
  Json rec;
  rec["id"] = str_cat("demo-", name);
  rec["image"] = item.image_rel;
  rec["conversations"] = conv;
  rec["kind"] = item.kind;
  item.line = rec.dump();
  for (const auto& turn : conv) item.texts.push_back(turn["value"].get<std::string>());
  return item;
}

// ---------------------------------------------------------------------------------------------------------
// Benchmarks in the VLMEvalKit TSV layouts (benchmarks spec §2), written as VLMEvalKit's dump_tsv does:
// every field quoted, tab-separated.

class Tsv {
 public:
  explicit Tsv(std::vector<std::string> columns) : columns_(std::move(columns)) { add(columns_); }
  void add(const std::vector<std::string>& cells) {
    LLAVACOT_CHECK(cells.size() == columns_.size(), RuntimeError, "TSV row has ", cells.size(), " cells for ",
                   columns_.size(), " columns");
    for (size_t i = 0; i < cells.size(); ++i) {
      text_ += i ? "\t\"" : "\"";
      for (char c : cells[i]) text_ += c == '"' ? std::string("\"\"") : std::string(1, c);
      text_ += '"';
    }
    text_ += '\n';
    ++rows_;
  }
  int64_t rows() const { return rows_ - 1; }
  const std::string& text() const { return text_; }

 private:
  std::vector<std::string> columns_;
  std::string text_;
  int64_t rows_ = 0;
};

void parallel_for(int64_t n, int64_t threads, const std::function<void(int64_t)>& fn) {
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(std::max<int64_t>(threads, 1)));
  for (int64_t t = 0; t < std::max<int64_t>(threads, 1); ++t)
    pool.emplace_back([&, t] {
      try {
        for (int64_t i = t; i < n; i += std::max<int64_t>(threads, 1)) fn(i);
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
      }
    });
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::string b64_png(const Scene& s, int size) { return base64_encode(encode_png(s, size)); }

const std::vector<std::string> kMcqKinds = {"count_colour", "count_total", "extreme",     "chart_value",
                                            "chart_extreme", "arithmetic", "diagram_target", "diagram_count"};
const std::vector<std::string> kNumberKinds = {"count_colour", "count_total", "chart_value", "arithmetic", "diagram_count"};

std::string mmstar_category(const std::string& kind) {
  if (kind == "count_total") return "coarse perception";
  if (kind == "count_colour") return "fine-grained perception";
  if (kind == "extreme") return "instance reasoning";
  if (kind == "chart_extreme") return "logical reasoning";
  if (kind == "chart_value" || kind == "arithmetic") return "math";
  return "science & technology";
}

std::string mmbench_l2(const std::string& kind) {
  if (kind == "count_total") return "coarse_perception";
  if (kind == "count_colour" || kind == "chart_value") return "finegrained_perception (instance-level)";
  if (kind == "extreme") return "finegrained_perception (cross-instance)";
  if (kind == "chart_extreme" || kind == "arithmetic") return "logic_reasoning";
  if (kind == "diagram_target") return "relation_reasoning";
  return "attribute_reasoning";
}

std::string mmvet_category(const std::string& kind) {
  if (kind == "count_colour" || kind == "count_total" || kind == "arithmetic") return "rec,math";
  if (kind == "extreme") return "rec,spat";
  if (kind == "chart_value" || kind == "chart_extreme") return "ocr,math";
  if (kind == "diagram_target" || kind == "diagram_count") return "rec,spat";
  return "rec";
}

std::string mathvista_task(const std::string& kind) {
  if (kind.rfind("chart", 0) == 0) return "figure question answering";
  if (kind == "arithmetic") return "math word problem";
  if (kind.rfind("diagram", 0) == 0) return "textbook question answering";
  return "visual question answering";
}

std::string mathvista_skills(const std::string& kind) {
  if (kind == "arithmetic") return "['arithmetic reasoning', 'numeric commonsense']";
  if (kind.rfind("chart", 0) == 0) return "['statistical reasoning']";
  if (kind.rfind("diagram", 0) == 0) return "['scientific reasoning']";
  return "['numeric commonsense']";
}

std::string py_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", '" : "'") + items[i] + "'";
  return out + "]";
}

struct BenchRow {
  std::vector<std::vector<std::string>> rows;  // one or more TSV rows
};

BenchRow bench_row(const std::string& bench, uint64_t stream, const DemoOptions& o, int64_t i) {
  Rng rng(stream_seed(o.seed, stream, static_cast<uint64_t>(i)));
  const int size = static_cast<int>(o.image_size);
  BenchRow out;
  if (bench == "MMStar") {
    const Qa q = setup(kMcqKinds[static_cast<size_t>(i) % kMcqKinds.size()], rng);
    const Rendered r = render(q, Style::kMcq, rng);
    auto opt = r.options.texts;
    opt.resize(4);
    out.rows.push_back({std::to_string(i), q.question, opt[0], opt[1], opt[2], opt[3],
                        std::string(1, letter(r.options.correct)), mmstar_category(q.kind), b64_png(q.scene, size)});
  } else if (bench == "MMBench_DEV_EN_V11") {
    const std::string kind = kMcqKinds[static_cast<size_t>(i) % kMcqKinds.size()];
    Qa q = setup(kind, rng);
    const std::string hint = rng.chance(0.5) ? "" : mmbench_hint(scene_type_of(kind));
    // Some questions have three options, as MMBench's do.
    const int n_opt = rng.chance(0.25) ? 3 : 4;
    Option opts = make_options(q, rng, n_opt);
    const int n = static_cast<int>(opts.texts.size());
    std::vector<std::string> labels;
    for (int k = 0; k < n; ++k) labels.emplace_back(1, letter(k));
    const int64_t base = i + 1;
    std::vector<std::string> cur = opts.texts;
    int answer = opts.correct;
    for (int pass = 0; pass < n; ++pass) {
      std::vector<std::string> cells = {std::to_string(base + static_cast<int64_t>(pass) * 1000000), q.question, hint};
      auto shown = cur;
      shown.resize(4);
      for (auto& c : shown) cells.push_back(c);
      cells.push_back(std::string(1, letter(answer)));
      cells.push_back(kind);
      cells.push_back(mmbench_l2(kind));
      cells.push_back("dev");
      cells.push_back(std::to_string(base));
      cells.push_back(pass == 0 ? b64_png(q.scene, size) : std::to_string(base));
      out.rows.push_back(cells);
      // The next pass: rotate the label list right by one; label s's content moves to c_map[s] = the label
      // before s (A -> the last), as VLMEvalKit's CIRCULAR tool does.
      std::vector<std::string> next(static_cast<size_t>(n));
      for (int k = 0; k < n; ++k) next[static_cast<size_t>((k + n - 1) % n)] = cur[static_cast<size_t>(k)];
      cur = next;
      answer = (answer + n - 1) % n;
    }
  } else if (bench == "MMVet") {
    static const std::vector<std::string> kinds = {"count_colour", "count_total", "extreme",     "colours",
                                                   "chart_value", "chart_extreme", "arithmetic", "diagram_target"};
    const Qa q = setup(kinds[static_cast<size_t>(i) % kinds.size()], rng);
    std::string answer = q.answer;
    if (q.form == Form::kPhrase && answer.rfind("the ", 0) == 0) answer = answer.substr(4);
    out.rows.push_back({std::to_string(i), q.question, answer, mmvet_category(q.kind), b64_png(q.scene, size)});
  } else if (bench == "MathVista_MINI") {
    const Qa q = setup(kNumberKinds[static_cast<size_t>(i) % kNumberKinds.size()], rng);
    const bool choice = i % 5 == 4;
    const Rendered r = render(q, choice ? Style::kMathChoice : Style::kMathFree, rng);
    out.rows.push_back({std::to_string(i + 1), b64_png(q.scene, size), r.prompt, q.answer, choice ? "multi_choice" : "free_form",
                        choice ? "text" : "integer", choice ? py_list(r.options.texts) : "",
                        choice ? std::string(1, letter(r.options.correct)) : "", mathvista_task(q.kind),
                        mathvista_skills(q.kind), "", ""});
  } else if (bench == "AI2D_TEST") {
    // One diagram, two questions (index = image id * 100 + question number), as AI2D's rows are.
    static const std::vector<std::string> kinds = {"diagram_target", "diagram_count"};
    const Qa first = setup(kinds[static_cast<size_t>(i) % 2], rng);
    std::vector<Qa> qs = {first};
    for (int attempt = 0; attempt < 20 && qs.size() < 2; ++attempt) {
      Qa q = first;
      q.kind = kinds[static_cast<size_t>(i + 1) % 2];
      const auto& node = first.scene.objs[static_cast<size_t>(rng.uniform(0, 3))];
      q.params = Params{};
      q.params.c1 = node.colour;
      if (derive(q, rng)) qs.push_back(q);
    }
    const std::string png = b64_png(first.scene, size);
    for (size_t k = 0; k < qs.size(); ++k) {
      const Rendered r = render(qs[k], Style::kMcq, rng);
      auto opt = r.options.texts;
      opt.resize(4);
      out.rows.push_back({std::to_string((i + 1) * 100 + static_cast<int64_t>(k)), qs[k].question, opt[0], opt[1], opt[2],
                          opt[3], std::string(1, letter(r.options.correct)),
                          qs[k].kind == "diagram_target" ? "flowDiagram" : "arrowCounting", "False",
                          str_cat("ai2d/images/", i + 1, ".png"), png});
    }
  } else if (bench == "HallusionBench") {
    // A set: one figure and an edited copy (figure ids 0 and 1, in random order), two yes/no questions asked
    // of both; the first question's answer flips with the edit.
    const bool chart = i % 2 == 1;
    const std::string l2 = chart ? "VS_chart" : "VD_figure";
    for (;;) {
      const std::vector<std::string> kinds = chart ? std::vector<std::string>{"chart_compare"}
                                                   : std::vector<std::string>{"exists", "compare", "position"};
      const Qa q0 = setup(rng.pick(kinds), rng);
      Qa edited;
      if (!wrong_candidate(q0, rng, edited)) continue;
      std::array<Scene, 2> figs = {q0.scene, edited.scene};
      if (rng.chance(0.5)) std::swap(figs[0], figs[1]);
      const Qa q1 = ask_yes_no(figs[0], rng);
      bool ok = true;
      std::array<std::array<Qa, 2>, 2> asked;  // [question][figure]
      for (int f = 0; f < 2; ++f) {
        asked[0][static_cast<size_t>(f)] = q0;
        asked[1][static_cast<size_t>(f)] = q1;
        for (int qi = 0; qi < 2; ++qi) {
          Qa& a = asked[static_cast<size_t>(qi)][static_cast<size_t>(f)];
          a.scene = figs[static_cast<size_t>(f)];
          ok = ok && derive(a, rng);
        }
      }
      if (!ok) continue;
      for (int f = 0; f < 2; ++f) {
        const std::string first_index = str_cat(l2, "_1_", i, "_", f, "_0");
        for (int qi = 0; qi < 2; ++qi) {
          const Qa& a = asked[static_cast<size_t>(qi)][static_cast<size_t>(f)];
          out.rows.push_back({str_cat(l2, "_1_", i, "_", f, "_", qi), a.question, capitalise(a.answer), chart ? "VS" : "VD", l2,
                              qi == 0 ? b64_png(a.scene, size) : first_index});
        }
      }
      break;
    }
  }
  return out;
}

struct BenchSpec {
  std::string name;
  std::vector<std::string> columns;
};

const std::vector<BenchSpec>& bench_specs() {
  static const std::vector<BenchSpec> specs = {
      {"MMStar", {"index", "question", "A", "B", "C", "D", "answer", "category", "image"}},
      {"MMBench_DEV_EN_V11",
       {"index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "split", "g_index", "image"}},
      {"MMVet", {"index", "question", "answer", "category", "image"}},
      {"MathVista_MINI",
       {"index", "image", "question", "answer", "question_type", "answer_type", "choices", "answer_option", "task", "skills",
        "precision", "unit"}},
      {"AI2D_TEST", {"index", "question", "A", "B", "C", "D", "answer", "category", "abcLabel", "image_path", "image"}},
      {"HallusionBench", {"index", "question", "answer", "category", "l2-category", "image"}},
  };
  return specs;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  LLAVACOT_CHECK(f.good(), IoError, "cannot write ", path);
}

}  // namespace

const std::vector<std::string>& demo_question_kinds() { return kKinds; }

std::vector<std::string> demo_mask_classes() {
  std::vector<std::string> names(kMaskClasses);
  names[0] = "background";
  for (int sh = 0; sh < kShapes; ++sh)
    for (int c = 0; c < kColours; ++c) names[static_cast<size_t>(mask_class(Obj{sh, c}))] = str_cat(kColourNames[c], " ", kShapeNames[sh]);
  for (int c = 0; c < kColours; ++c) names[static_cast<size_t>(kMaskBarBase + c)] = str_cat(kColourNames[c], " bar");
  names[kMaskStroke] = "stroke";
  return names;
}

std::string verification_prompt(const std::string& question, const std::string& candidate) {
  return str_cat("Question: ", question, "\nCandidate answer: ", candidate,
                 "\nIs the candidate answer correct for this image? Answer correct or incorrect.");
}

DemoSummary make_demo_data(const DemoOptions& o) {
  namespace stdfs = std::filesystem;
  LLAVACOT_CHECK(!o.out.empty(), UsageError, "make-demo-data needs an output folder");
  LLAVACOT_CHECK(o.train >= 1 && o.bench >= 1, UsageError, "--train and --bench must be at least 1");
  LLAVACOT_CHECK(o.image_size >= 56 && o.image_size <= 2048, UsageError, "--image-size must be in [56, 2048], got ",
                 o.image_size);
  for (const auto& [name, v] : {std::pair{"--verify-fraction", o.verify_fraction}, {"--multi-turn-fraction", o.multi_turn_fraction},
                                {"--hint-fraction", o.hint_fraction}, {"--three-option-fraction", o.three_option_fraction}})
    LLAVACOT_CHECK(v >= 0 && v <= 1, UsageError, name, " must be in [0, 1], got ", v);
  const auto start = std::chrono::steady_clock::now();
  std::string out = o.out;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  LLAVACOT_CHECK(o.overwrite || !stdfs::exists(out), UsageError, out,
                 " already exists; pass --overwrite to replace it");
  const std::string tmp = str_cat(out, ".partial-", ::getpid());
  stdfs::remove_all(tmp);
  for (const char* sub : {"images/shapes", "images/charts", "images/diagrams", "masks/shapes", "masks/charts", "masks/diagrams", "bench"})
    fs::create_dirs(tmp + "/" + sub);

  DemoSummary sum;
  sum.out = out;
  // Training records.
  std::vector<TrainItem> items(static_cast<size_t>(o.train));
  parallel_for(o.train, o.threads, [&](int64_t i) {
    auto item = train_item(o, i);
    write_bytes(str_cat(tmp, "/images/", item.image_rel), item.png);
    write_bytes(str_cat(tmp, "/masks/", item.image_rel), item.mask_png);
    item.png.clear();
    item.mask_png.clear();
    items[static_cast<size_t>(i)] = std::move(item);
  });
  {
    std::string text;
    for (const auto& it : items) {
      text += it.line;
      text += '\n';
      ++sum.kinds[it.kind];
      sum.verification_records += it.verification;
      sum.multi_turn_records += it.multi_turn;
    }
    write_bytes(tmp + "/train.jsonl", text);
    // The (image, mask) pairs for `llavacot pretrain-vision`, paths relative to this file.
    std::string pairs;
    for (const auto& it : items)
      pairs += Json{{"image", "images/" + it.image_rel}, {"mask", "masks/" + it.image_rel}}.dump() + "\n";
    write_bytes(tmp + "/vision.jsonl", pairs);
  }
  {
    // The tokenizer learns from the training turns and the chat template's role names.
    std::vector<std::string> corpus = {"system", "user", "assistant", "\n\n"};
    for (auto& it : items)
      for (auto& t : it.texts) corpus.push_back(std::move(t));
    text::BpeTrainOptions bo;
    bo.vocab_size = o.vocab_size;
    write_bytes(tmp + "/tokenizer.json", text::train_bpe_tokenizer_json(corpus, bo));
  }
  sum.train_records = o.train;
  sum.images = o.train;
  LOG_INFO("demo", "train.jsonl: ", o.train, " records (", sum.verification_records, " verification, ", sum.multi_turn_records,
           " multi-turn)");
  // Benchmarks.
  for (size_t b = 0; b < bench_specs().size(); ++b) {
    const auto& spec = bench_specs()[b];
    std::vector<BenchRow> rows(static_cast<size_t>(o.bench));
    parallel_for(o.bench, o.threads, [&](int64_t i) { rows[static_cast<size_t>(i)] = bench_row(spec.name, 100 + b, o, i); });
    Tsv tsv(spec.columns);
    for (const auto& r : rows)
      for (const auto& cells : r.rows) tsv.add(cells);
    write_bytes(str_cat(tmp, "/bench/", spec.name, ".tsv"), tsv.text());
    sum.bench_rows[spec.name + ".tsv"] = tsv.rows();
    LOG_INFO("demo", "bench/", spec.name, ".tsv: ", tsv.rows(), " rows");
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Json manifest;
  manifest["generator"] = "llavacot make-demo-data";
  manifest["format_version"] = 1;
  manifest["seed"] = o.seed;
  manifest["image_size"] = o.image_size;
  manifest["tokenizer"] = {{"file", "tokenizer.json"}, {"vocab_size", o.vocab_size}, {"image_token_id", o.vocab_size}};
  manifest["train"] = {{"file", "train.jsonl"},          {"image_root", "images"},
                       {"records", sum.train_records},   {"verification", sum.verification_records},
                       {"multi_turn", sum.multi_turn_records}, {"kinds", sum.kinds},
                       {"hint_fraction", o.hint_fraction},  {"three_option_fraction", o.three_option_fraction}};
  manifest["vision"] = {{"file", "vision.jsonl"}, {"mask_root", "masks"}, {"classes", demo_mask_classes()}};
  manifest["bench"] = sum.bench_rows;
  write_bytes(tmp + "/manifest.json", manifest.dump(2) + "\n");
  fs::fsync_dir(tmp);
  if (stdfs::exists(out)) {
    const std::string old = str_cat(out, ".old-", ::getpid());
    stdfs::rename(out, old);
    stdfs::rename(tmp, out);
    stdfs::remove_all(old);
  } else {
    stdfs::rename(tmp, out);
  }
  const auto parent = stdfs::path(out).parent_path();
  fs::fsync_dir(parent.empty() ? "." : parent.string());
  return sum;
}

}  // namespace llavacot::data
