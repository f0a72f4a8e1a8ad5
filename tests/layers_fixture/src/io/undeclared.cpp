// A module that includes a lower module it does not declare as a dependency: the check must refuse it.
#include "deforma/render/colormap.hpp"
