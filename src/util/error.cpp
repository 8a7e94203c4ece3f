#include "llavacot/util/error.h"

#include <exception>

namespace llavacot {

namespace {
template <class E>
[[noreturn]] void throw_as(const std::string& context, const E& e) {
  throw E(context + ": " + e.what());
}
}  // namespace

void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const UsageError& e) {
    throw_as(context, e);
  } catch (const ConfigError& e) {
    throw_as(context, e);
  } catch (const NotImplementedError& e) {
    throw_as(context, e);
  } catch (const IoError& e) {
    throw_as(context, e);
  } catch (const FormatError& e) {
    throw_as(context, e);
  } catch (const RuntimeError& e) {
    throw_as(context, e);
  } catch (const Error& e) {
    throw Error(context + ": " + e.what());
  } catch (const std::exception& e) {
    throw RuntimeError(context + ": " + e.what());
  }
}

}  // namespace llavacot
