#ifndef CTTUNE_CYAML_SHIM_H
#define CTTUNE_CYAML_SHIM_H

/* LibYAML, the system's (libyaml-dev): its parser composes profiles and
 * kube-proxy's configuration in Sources/TunerCore/YAML/YAMLNode.swift. */
#include <yaml.h>

#endif
