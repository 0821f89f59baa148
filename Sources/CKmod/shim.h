#ifndef CTTUNE_CKMOD_SHIM_H
#define CTTUNE_CKMOD_SHIM_H

#include <libkmod.h>

#endif
