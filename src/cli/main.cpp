// llavacot: parse, validate, build, run. Only this file catches exceptions: it prints one line and exits
// 2 for usage/config errors and unimplemented commands, 1 for runtime failures.
#include <CLI/CLI.hpp>

#include <iostream>

#include "common.h"
#include "llavacot/util/process.h"
#include "llavacot/config/loader.h"
#include "llavacot/dist/build_info.h"
#include "llavacot/util/error.h"
#include "llavacot/util/log.h"

int main(int argc, char** argv) {
  using namespace llavacot;
  util::keep_heap_between_steps();
  CLI::App app{"llavacot: fine-tune, decode (greedy, stage beam, SWIRES), evaluate and export Llama-3.2-Vision "
               "models for four-stage visual reasoning"};
  app.require_subcommand(0, 1);
  std::string log_level;
  bool version = false;
  bool config_reference = false;
  app.add_option("--log-level", log_level, "trace | debug | info | warn | error, or per component: info,data=debug")
      ->each([](const std::string& spec) {
        log::configure(spec);
        cli::set_log_level_from_flag();
      });
  app.add_flag("--version", version, "print the version and build facts and exit");
  app.add_flag("--config-reference", config_reference, "print the reference of every config key (Markdown) and exit");
  cli::register_train(app);
  cli::register_pretrain_vision(app);
  cli::register_eval(app);
  cli::register_generate(app);
  cli::register_export(app);
  cli::register_inspect(app);
  cli::register_tokenize(app);
  cli::register_bench(app);
  cli::register_preprocess(app);
  cli::register_make_demo_data(app);
  cli::register_launch(app);

  try {
    log::configure_from_env();
    app.parse(argc, argv);
    if (version) {
      std::cout << format_build_info(build_info());
    } else if (config_reference) {
      std::cout << config::reference_markdown();
    } else if (app.get_subcommands().empty()) {
      std::cout << app.help();
    }
    return 0;
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const ExitCode& e) {
    return e.exit_code();  // the processes it ran have said what went wrong
  } catch (const Error& e) {
    std::cerr << std::string("llavacot: error: ") + e.what() + "\n";  // one write: launchers tag whole lines
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << std::string("llavacot: error: ") + e.what() + "\n";
    return 1;
  }
}
