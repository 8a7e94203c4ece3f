// YAML <-> Config. Everything walks the structs' visit_fields(), so the set of keys, their types and
// their comments are declared once in config.h.
#include "llavacot/config/loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <sstream>
#include <type_traits>

#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"

namespace llavacot::config {

namespace {

// ----------------------------------------------------------------------------------------------
// Type names and scalar conversion

template <class T>
struct TypeName;
template <>
struct TypeName<bool> {
  static std::string get() { return "bool"; }
};
template <>
struct TypeName<int64_t> {
  static std::string get() { return "int"; }
};
template <>
struct TypeName<double> {
  static std::string get() { return "float"; }
};
template <>
struct TypeName<std::string> {
  static std::string get() { return "string"; }
};
template <class T>
struct TypeName<std::vector<T>> {
  static std::string get() { return "list of " + TypeName<T>::get(); }
};
template <class T>
struct TypeName<std::map<std::string, T>> {
  static std::string get() { return "map of string to " + TypeName<T>::get(); }
};

std::string where(const std::string& source, const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  if (m.line < 0) return source;
  return str_cat(source, ":", m.line + 1);
}

[[noreturn]] void type_error(const std::string& source, const YAML::Node& node, const std::string& key,
                             const std::string& expected) {
  std::string got = node.IsNull()       ? std::string("nothing")
                    : node.IsScalar()   ? "'" + node.Scalar() + "'"
                    : node.IsSequence() ? std::string("a list")
                                        : std::string("a map");
  throw ConfigError(str_cat(where(source, node), ": ", key, ": expected ", expected, ", got ", got));
}

// Shortest decimal text that reads back as exactly `v`.
std::string format_double(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  // Keep it visibly a float so YAML readers other than ours type it as one.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

void convert(const YAML::Node& node, bool& out, const std::string& key, const std::string& src) {
  if (!node.IsScalar()) type_error(src, node, key, "true or false");
  const std::string& s = node.Scalar();
  if (s == "true" || s == "True" || s == "TRUE") out = true;
  else if (s == "false" || s == "False" || s == "FALSE") out = false;
  else type_error(src, node, key, "true or false");
}

void convert(const YAML::Node& node, int64_t& out, const std::string& key, const std::string& src) {
  if (!node.IsScalar()) type_error(src, node, key, "an integer");
  const std::string& s = node.Scalar();
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE) type_error(src, node, key, "an integer");
  out = static_cast<int64_t>(v);
}

void convert(const YAML::Node& node, double& out, const std::string& key, const std::string& src) {
  if (!node.IsScalar()) type_error(src, node, key, "a number");
  const std::string& s = node.Scalar();
  if (s == ".inf" || s == "+.inf") { out = std::numeric_limits<double>::infinity(); return; }
  if (s == "-.inf") { out = -std::numeric_limits<double>::infinity(); return; }
  if (s == ".nan" || s == ".NaN") { out = std::numeric_limits<double>::quiet_NaN(); return; }
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  bool hexlike = s.find_first_of("xXpP") != std::string::npos;
  bool word = s.find_first_of("iInN") != std::string::npos;  // "inf", "nan" are not YAML numbers
  if (s.empty() || end != s.c_str() + s.size() || hexlike || word) type_error(src, node, key, "a number");
  out = v;
}

void convert(const YAML::Node& node, std::string& out, const std::string& key, const std::string& src) {
  if (node.IsNull()) { out.clear(); return; }
  if (!node.IsScalar()) type_error(src, node, key, "a string");
  out = node.Scalar();
}

template <class T>
void convert(const YAML::Node& node, std::vector<T>& out, const std::string& key, const std::string& src) {
  if (node.IsNull()) { out.clear(); return; }
  if (!node.IsSequence()) type_error(src, node, key, TypeName<std::vector<T>>::get());
  std::vector<T> result;
  size_t i = 0;
  for (const auto& item : node) {
    T v{};
    convert(item, v, str_cat(key, "[", i++, "]"), src);
    result.push_back(std::move(v));
  }
  out = std::move(result);
}

template <class T>
void convert(const YAML::Node& node, std::map<std::string, T>& out, const std::string& key, const std::string& src) {
  if (node.IsNull()) { out.clear(); return; }
  if (!node.IsMap()) type_error(src, node, key, TypeName<std::map<std::string, T>>::get());
  std::map<std::string, T> result;
  for (const auto& kv : node) {
    std::string k;
    convert(kv.first, k, key + " (a key)", src);
    if (result.count(k)) throw ConfigError(str_cat(where(src, kv.first), ": ", key, ": duplicate key '", k, "'"));
    convert(kv.second, result[k], key + "." + k, src);
  }
  out = std::move(result);
}

// ----------------------------------------------------------------------------------------------
// Did-you-mean

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string suggestion(const std::string& key, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, key.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = edit_distance(key, c);
    if (d < best_d) { best_d = d; best = c; }
  }
  return best.empty() ? std::string() : " (did you mean '" + best + "'?)";
}

// ----------------------------------------------------------------------------------------------
// Visitors

struct NameCollector {
  std::vector<std::string> names;
  template <class T>
  void field(const char* name, T&, const char*) { names.push_back(name); }
  template <class S>
  void section(const char* name, S&, const char*) { names.push_back(name); }
};

// Applies a YAML map onto one section struct.
struct SectionApplier {
  const YAML::Node& node;
  const std::string& section;
  const std::string& source;
  template <class T>
  void field(const char* name, T& ref, const char*) {
    YAML::Node v = node[name];
    if (v.IsDefined()) convert(v, ref, section + "." + name, source);
  }
};

template <class S>
void apply_section(S& s, const YAML::Node& node, const std::string& section, const std::string& source) {
  if (node.IsNull()) return;
  if (!node.IsMap()) type_error(source, node, section, "a map of keys");
  NameCollector names;
  s.visit_fields(names);
  std::set<std::string> seen;
  for (const auto& kv : node) {
    std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "<non-scalar key>";
    if (std::find(names.names.begin(), names.names.end(), k) == names.names.end())
      throw ConfigError(str_cat(where(source, kv.first), ": unknown key '", section, ".", k, "'",
                                suggestion(k, names.names)));
    if (!seen.insert(k).second)
      throw ConfigError(str_cat(where(source, kv.first), ": duplicate key '", section, ".", k, "'"));
  }
  SectionApplier a{node, section, source};
  s.visit_fields(a);
}

struct RootApplier {
  const YAML::Node& root;
  const std::string& source;
  template <class S>
  void section(const char* name, S& s, const char*) {
    YAML::Node n = root[name];
    if (n.IsDefined()) apply_section(s, n, name, source);
  }
};

// Parses the text of a --set value for a field of type T. Strings take the text as it is (so
// "--set eval.prompts.mmstar=Answer: {q}" works) unless it is quoted YAML; other types parse it as YAML.
template <class T>
void convert_override(const std::string& text, T& out, const std::string& key) {
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(str_cat("--set ", key, ": cannot parse value '", text, "': ", e.msg));
  }
  convert(node, out, key, "--set");
}
void convert_override(const std::string& text, std::string& out, const std::string& key) {
  if (!text.empty() && (text[0] == '"' || text[0] == '\'')) {
    YAML::Node node;
    try {
      node = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      throw ConfigError(str_cat("--set ", key, ": cannot parse quoted value ", text, ": ", e.msg));
    }
    convert(node, out, key, "--set");
  } else {
    out = text;
  }
}

// Sets one field addressed by a path inside a section: "key" or "mapkey.entry".
struct OverrideSetter {
  const std::string& rest;  // path below the section
  const std::string& value_text;
  const std::string& full_key;
  bool found = false;

  template <class T>
  void set(const char* name, T& ref) {
    if (rest == name) {
      convert_override(value_text, ref, full_key);
      found = true;
    }
  }
  template <class T>
  void set(const char* name, std::map<std::string, T>& ref) {
    std::string n(name);
    if (rest == n) {
      convert_override(value_text, ref, full_key);
      found = true;
    } else if (rest.size() > n.size() + 1 && rest.compare(0, n.size() + 1, n + ".") == 0) {
      convert_override(value_text, ref[rest.substr(n.size() + 1)], full_key);
      found = true;
    }
  }
  template <class T>
  void field(const char* name, T& ref, const char*) { set(name, ref); }
};

struct SectionOverride {
  const std::string& section_name;
  const std::string& rest;
  const std::string& value_text;
  const std::string& full_key;
  bool section_found = false;
  bool found = false;
  std::vector<std::string> field_names;

  template <class S>
  void section(const char* name, S& s, const char*) {
    if (section_name != name) return;
    section_found = true;
    OverrideSetter setter{rest, value_text, full_key};
    s.visit_fields(setter);
    found = setter.found;
    NameCollector names;
    s.visit_fields(names);
    field_names = names.names;
  }
};

// Emits YAML with comments.
template <class T>
void emit_value(YAML::Emitter& out, const T& v) { out << v; }
void emit_value(YAML::Emitter& out, const double& v) { out << format_double(v); }
void emit_value(YAML::Emitter& out, const int64_t& v) { out << static_cast<long long>(v); }
void emit_value(YAML::Emitter& out, const bool& v) { out << YAML::TrueFalseBool << v; }
void emit_value(YAML::Emitter& out, const std::string& v) {
  // Quote anything a YAML reader could type as a non-string, and the empty string.
  bool needs_quotes = v.empty();
  if (!needs_quotes) {
    YAML::Node probe;
    try {
      probe = YAML::Load(v);
      needs_quotes = !probe.IsScalar() || probe.Scalar() != v || probe.Tag() != "?";
      static const char* const kSpecial[] = {"true", "false", "True", "False", "TRUE", "FALSE", "null", "~",
                                             "yes",  "no",    "on",   "off",   "y",    "n"};
      for (const char* s : kSpecial) needs_quotes = needs_quotes || v == s;
      char* end = nullptr;
      std::strtod(v.c_str(), &end);
      needs_quotes = needs_quotes || end == v.c_str() + v.size();
    } catch (const YAML::Exception&) {
      needs_quotes = true;
    }
  }
  if (needs_quotes) out << YAML::DoubleQuoted;
  out << v;
}
template <class T>
void emit_value(YAML::Emitter& out, const std::vector<T>& v) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const auto& x : v) emit_value(out, x);
  out << YAML::EndSeq;
}
template <class T>
void emit_value(YAML::Emitter& out, const std::map<std::string, T>& v) {
  out << YAML::Flow << YAML::BeginMap;
  for (const auto& [k, x] : v) {
    out << YAML::Key;
    emit_value(out, k);
    out << YAML::Value;
    emit_value(out, x);
  }
  out << YAML::EndMap;
}

struct Emitter {
  YAML::Emitter& out;
  template <class T>
  void field(const char* name, T& ref, const char* comment) {
    out << YAML::Key << name << YAML::Value;
    emit_value(out, ref);
    out << YAML::Comment(comment);
  }
  template <class S>
  void section(const char* name, S& s, const char* comment) {
    out << YAML::Newline << YAML::Comment(comment) << YAML::Newline;
    out << YAML::Key << name << YAML::Value << YAML::BeginMap;
    s.visit_fields(*this);
    out << YAML::EndMap;
  }
};

template <class T>
std::string default_text(const T& v) {
  YAML::Emitter out;
  emit_value(out, v);
  return out.c_str();
}

// Markdown table cells cannot hold a bare '|'.
std::string md_cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

struct DocWriter {
  std::ostringstream& md;
  std::vector<std::string>* paths;
  std::string prefix;
  template <class T>
  void field(const char* name, T& ref, const char* comment) {
    if (paths) paths->push_back(prefix + name);
    md << "| `" << prefix << name << "` | " << TypeName<T>::get() << " | `" << md_cell(default_text(ref)) << "` | "
       << md_cell(comment) << " |\n";
  }
  template <class S>
  void section(const char* name, S& s, const char* comment) {
    md << "\n### `" << name << "`: " << comment << "\n\n| key | type | default | meaning |\n|---|---|---|---|\n";
    DocWriter inner{md, paths, std::string(name) + "."};
    s.visit_fields(inner);
  }
};

}  // namespace

// ------------------------------------------------------------------------------------------------

void apply_text(Config& cfg, const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(str_cat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg));
  }
  if (root.IsNull()) return;  // an empty file changes nothing
  if (!root.IsMap()) throw ConfigError(str_cat(where(source, root), ": top level must be a map of sections"));
  NameCollector sections;
  cfg.visit_sections(sections);
  std::set<std::string> seen;
  for (const auto& kv : root) {
    std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "<non-scalar key>";
    if (std::find(sections.names.begin(), sections.names.end(), k) == sections.names.end())
      throw ConfigError(str_cat(where(source, kv.first), ": unknown section '", k, "'",
                                suggestion(k, sections.names)));
    if (!seen.insert(k).second)
      throw ConfigError(str_cat(where(source, kv.first), ": duplicate section '", k, "'"));
  }
  RootApplier a{root, source};
  cfg.visit_sections(a);
}

void apply_file(Config& cfg, const std::string& path) { apply_text(cfg, fs::read_file(path), path); }

void apply_override(Config& cfg, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(str_cat("--set '", assignment, "': expected key.path=value"));
  std::string key = assignment.substr(0, eq);
  std::string value_text = assignment.substr(eq + 1);
  auto dot = key.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == key.size())
    throw ConfigError(str_cat("--set '", assignment, "': key must be section.key (e.g. train.lr)"));
  std::string section = key.substr(0, dot);
  std::string rest = key.substr(dot + 1);
  SectionOverride o{section, rest, value_text, key, false, false, {}};
  cfg.visit_sections(o);
  if (!o.section_found) {
    NameCollector sections;
    cfg.visit_sections(sections);
    throw ConfigError(str_cat("--set: unknown section '", section, "'", suggestion(section, sections.names)));
  }
  if (!o.found)
    throw ConfigError(str_cat("--set: unknown key '", key, "'", suggestion(rest, o.field_names)));
}

Config load(const std::vector<std::string>& files, const std::vector<std::string>& overrides) {
  Config cfg;
  for (const auto& f : files) apply_file(cfg, f);
  for (const auto& o : overrides) apply_override(cfg, o);
  return cfg;
}

std::string to_yaml(const Config& cfg) {
  YAML::Emitter out;
  out.SetIndent(2);
  out << YAML::Comment("llavacot resolved configuration") << YAML::BeginMap;
  Emitter e{out};
  const_cast<Config&>(cfg).visit_sections(e);
  out << YAML::EndMap;
  if (!out.good()) throw RuntimeError(str_cat("YAML emitter failed: ", out.GetLastError()));
  return std::string(out.c_str()) + "\n";
}

std::string write_resolved(const Config& cfg, const std::string& dir) {
  fs::create_dirs(dir);
  std::string path = dir + "/config.resolved.yaml";
  fs::write_file_atomic(path, to_yaml(cfg));
  return path;
}

std::vector<std::string> key_paths() {
  std::ostringstream md;
  std::vector<std::string> paths;
  Config cfg;
  DocWriter w{md, &paths, ""};
  cfg.visit_sections(w);
  return paths;
}

std::string reference_markdown() {
  std::ostringstream md;
  Config cfg;
  DocWriter w{md, nullptr, ""};
  cfg.visit_sections(w);
  return md.str();
}

}  // namespace llavacot::config
