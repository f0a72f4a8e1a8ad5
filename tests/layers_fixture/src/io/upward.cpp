// A lower module that includes a higher one: the layering check must refuse it.
#include "deforma/ops.hpp"
