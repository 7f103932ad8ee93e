export async function renderHistory(el) { el.innerHTML = '<h2>todo</h2>'; }
