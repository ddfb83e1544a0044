// IsolationUnit's defaults (include/deviso/backend.h).

#include <cstdio>

#include "deviso/backend.h"

namespace deviso {

size_t IsolationUnit::Describe(char* out, size_t out_size) const {
  const UnitCaps& c = caps();
  const int n =
      std::snprintf(out, out_size, "%s (%s): OAS %u bits, page sizes 0x%llx", c.name, c.backend,
                    static_cast<unsigned>(c.oas), static_cast<unsigned long long>(c.page_sizes));
  return n < 0 ? 0 : static_cast<size_t>(n);
}

}  // namespace deviso
