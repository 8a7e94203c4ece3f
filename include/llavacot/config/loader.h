// Loading, layering, overriding, validating and dumping the typed Config (config.h).
// YAML files apply left to right; then `--set a.b=value` overrides in order. Unknown keys are errors
// naming the key path and the file (with a did-you-mean hint); type errors name the file and line.
#pragma once

#include <string>
#include <vector>

#include "llavacot/config/config.h"

namespace llavacot::config {

/// Defaults, then each YAML file in order, then each `key.path=value` override. Does not validate.
Config load(const std::vector<std::string>& files, const std::vector<std::string>& overrides);

/// Applies one YAML file onto `cfg`. Throws ConfigError (or IoError if unreadable).
void apply_file(Config& cfg, const std::string& path);
/// Applies YAML text onto `cfg`; `source` names it in errors.
void apply_text(Config& cfg, const std::string& yaml_text, const std::string& source);
/// Applies one override "section.key=value" (or "section.mapfield.entry=value"). The value is parsed as
/// YAML, so lists ("[a, b]") and numbers ("1e-4") work.
void apply_override(Config& cfg, const std::string& assignment);

/// The config as YAML with one comment per field; loading it back gives an equal config.
std::string to_yaml(const Config& cfg);
/// Writes to_yaml(cfg) atomically to DIR/config.resolved.yaml, creating DIR; returns the file path.
std::string write_resolved(const Config& cfg, const std::string& dir);

/// All key paths ("train.lr", ...), in declaration order.
std::vector<std::string> key_paths();
/// Markdown reference of every section and key: type, default, meaning (docs/configs.md embeds it).
std::string reference_markdown();

}  // namespace llavacot::config
