//! Kubernetes step kinds: [`apply`] (`k8s.apply`) renders manifests and applies them wave
//! by wave, waiting for each wave's rollouts.

mod apply;

pub(super) use apply::K8sApply;
