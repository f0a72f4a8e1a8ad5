// core including GDAL: the check must refuse it (GDAL's set-up lives in io).
#include <gdal_priv.h>
