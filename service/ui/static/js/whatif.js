export async function renderWhatIf(el) { el.innerHTML = '<h2>todo</h2>'; }
